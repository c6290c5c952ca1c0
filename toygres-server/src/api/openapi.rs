//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the handlers and types.

use super::error::{ErrorBody, ErrorDetail};
use super::recovery::{
    CreateRestorePointBody, Protection, ProtectionAnswer, Recovery, RecoveryMoment, RecoveryTarget, RecoveryWindow,
    RestorePoint, TimelineSwitch, WalGap,
};
use super::requests::{CreateImageBody, CreateInstanceBody, CreateScheduleBody, ImageFormat};
use super::responses::{
    Connection, Created, Encryption, Health, Image, ImagePage, Instance, InstancePage, Progress, Schedule, SchedulePage,
};
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API's document.
#[derive(OpenApi)]
#[openapi(
    info(title = "toygres", description = "Images of PostgreSQL instances and instances restored from them."),
    paths(
        super::healthz,
        super::instances::create, super::instances::list, super::instances::get, super::instances::delete,
        super::protection::protect, super::protection::unprotect, super::protection::recovery_window,
        super::protection::create_restore_point,
        super::images::create, super::images::list, super::images::get, super::images::delete,
        super::schedules::create, super::schedules::list, super::schedules::get, super::schedules::delete,
        document,
    ),
    components(schemas(
        CreateInstanceBody, CreateImageBody, ImageFormat, Created, Instance, Image, Encryption, InstancePage, ImagePage, Connection,
        Progress, CreateScheduleBody, Schedule, SchedulePage,
        Protection, RestorePoint, Recovery, RecoveryTarget, RecoveryWindow, RecoveryMoment, WalGap, TimelineSwitch,
        ProtectionAnswer, CreateRestorePointBody,
        ErrorBody, ErrorDetail, Health,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("TOYGRES_TOKEN")).build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"),
        (status = 401, body = ErrorBody)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn schemas() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()["components"]["schemas"].clone()
    }

    #[test]
    fn create_image_body_shows_the_optional_format_and_its_values() {
        let schemas = schemas();
        let body = &schemas["CreateImageBody"];
        let format = &body["properties"]["format"];
        assert_eq!(format["default"], "logical", "{body}");
        assert_eq!(format["oneOf"][0]["$ref"], "#/components/schemas/ImageFormat", "{body}");
        assert!(!body["required"].as_array().unwrap().contains(&json!("format")), "{body}");
        assert_eq!(body["additionalProperties"], false, "{body}");
        assert_eq!(schemas["ImageFormat"]["enum"], json!(["logical", "physical", "clone"]));
        let from_image = &body["properties"]["from_image"];
        assert_eq!(from_image["format"], "uuid", "{body}");
        assert!(!body["required"].as_array().unwrap().contains(&json!("from_image")), "{body}");
        assert_eq!(schemas["ImageFormat"]["type"], "string");
    }

    #[test]
    fn schedules_are_documented_with_their_limits() {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let body = &document["components"]["schemas"]["CreateScheduleBody"];
        assert_eq!(body["properties"]["name"]["maxLength"], 49, "{body}");
        assert_eq!(body["additionalProperties"], false, "{body}");
        assert_eq!(body["required"], json!(["name", "instance_id", "cron"]), "{body}");
        let create = &document["paths"]["/api/schedules"]["post"]["responses"];
        for status in ["201", "400", "401", "404", "409", "422"] {
            assert!(create.get(status).is_some(), "POST /api/schedules declares {status}: {create}");
        }
        let schedule = &document["components"]["schemas"]["Schedule"];
        assert!(schedule["properties"].get("next_run_at").is_some(), "{schedule}");
    }

    #[test]
    fn point_in_time_restore_is_documented() {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = &document["paths"];
        let protection = &paths["/api/instances/{id}/protection"];
        for status in ["200", "202", "401", "404", "409", "422", "429"] {
            assert!(protection["post"]["responses"].get(status).is_some(), "protect declares {status}");
        }
        assert!(protection["delete"]["responses"].get("200").is_some());
        assert!(paths["/api/instances/{id}/recovery-window"]["get"]["responses"].get("409").is_some());
        assert!(paths["/api/instances/{id}/restore-points"]["post"]["responses"].get("201").is_some());
        let create = &paths["/api/instances"]["post"]["responses"];
        assert!(create["422"]["description"].as_str().unwrap().contains("outside_recovery_window"));
        let body = &document["components"]["schemas"]["CreateInstanceBody"];
        let variants = body["oneOf"].as_array().unwrap();
        assert_eq!(variants.len(), 3, "{body}");
        let pitr = variants.iter().find(|v| v["title"] == "Point-in-time restore").expect("the variant");
        assert_eq!(pitr["required"], json!(["name", "point_in_time"]));
        assert_eq!(pitr["properties"]["point_in_time"]["additionalProperties"], false);
        let instance = &document["components"]["schemas"]["Instance"]["properties"];
        assert!(instance.get("protection").is_some() && instance.get("recovery").is_some(), "{instance}");
        let shown = &document["components"]["schemas"]["Protection"]["properties"];
        assert!(shown.get("key").is_none(), "the archive's key is never shown: {shown}");
    }

    #[test]
    fn an_image_always_shows_its_format() {
        let image = &schemas()["Image"];
        assert_eq!(image["properties"]["format"]["$ref"], "#/components/schemas/ImageFormat", "{image}");
        assert!(image["required"].as_array().unwrap().contains(&json!("format")), "{image}");
    }
}
