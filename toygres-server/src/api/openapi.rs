//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the handlers and types.

use super::error::{ErrorBody, ErrorDetail};
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
        super::images::create, super::images::list, super::images::get, super::images::delete,
        super::schedules::create, super::schedules::list, super::schedules::get, super::schedules::delete,
        document,
    ),
    components(schemas(
        CreateInstanceBody, CreateImageBody, ImageFormat, Created, Instance, Image, Encryption, InstancePage, ImagePage, Connection,
        Progress, CreateScheduleBody, Schedule, SchedulePage,
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
    fn an_image_always_shows_its_format() {
        let image = &schemas()["Image"];
        assert_eq!(image["properties"]["format"]["$ref"], "#/components/schemas/ImageFormat", "{image}");
        assert!(image["required"].as_array().unwrap().contains(&json!("format")), "{image}");
    }
}
