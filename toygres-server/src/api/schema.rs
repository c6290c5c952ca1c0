//! Hand-written schema parts that the derive cannot express: `POST /api/instances` is either a
//! fresh instance (`password` required) or a restore (`source_image_id` required), never both
//! with `runtime_image_id` / `image_override`.

use super::fields::{labels_json, DNS_LABEL};
use super::requests::CreateInstanceBody;
use serde_json::json;
use std::borrow::Cow;
use toygres_core::request::{MAX_PASSWORD, MIN_PASSWORD, PASSWORD_RULE};
use utoipa::openapi::{RefOr, Schema};

impl utoipa::PartialSchema for CreateInstanceBody {
    fn schema() -> RefOr<Schema> {
        let label = json!({ "type": "string", "pattern": DNS_LABEL, "minLength": 1, "maxLength": 63 });
        let optional_label =
            json!({ "type": ["string", "null"], "pattern": DNS_LABEL, "minLength": 1, "maxLength": 63 });
        let labels = labels_json();
        let fresh = json!({
            "title": "Fresh instance",
            "description": "A new empty instance whose superuser has `password`.",
            "type": "object",
            "required": ["name", "password"],
            "additionalProperties": false,
            "properties": {
                "name": label,
                "password": { "type": "string", "minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD,
                              "pattern": r"^[^\x00-\x1f\x7f-\x9f]+$",
                              "description": format!("Superuser password (stored sealed, never shown): {PASSWORD_RULE}; \
                                                      one that breaks it is refused with 422 `weak_password`.") },
                "dns_label": optional_label,
                "source_image_id": { "type": "null" },
                "runtime_image_id": { "type": ["string", "null"] },
                "image_override": { "type": ["string", "null"] },
                "databases": { "type": "null" },
                "labels": labels,
            },
        });
        let restore = json!({
            "title": "Restore",
            "description": "A new instance restored from a ready image. It uses the image's source password; \
                            `password` is accepted and ignored. `runtime_image_id` and `image_override` are refused.",
            "type": "object",
            "required": ["name", "source_image_id"],
            "additionalProperties": false,
            "properties": {
                "name": label,
                "source_image_id": { "type": "string", "format": "uuid" },
                "dns_label": optional_label,
                "password": { "type": ["string", "null"], "description": "Ignored." },
                "runtime_image_id": { "type": "null" },
                "image_override": { "type": "null" },
                "databases": { "type": ["array", "null"], "items": { "type": "string" }, "minItems": 1, "uniqueItems": true,
                               "description": "Only these databases of the image (default: every one); each must be in it." },
                "labels": labels,
            },
        });
        let schema = json!({ "oneOf": [fresh, restore], "examples": [
            { "name": "scratch", "password": "Change-me-2026" },
            { "name": "orders-copy", "source_image_id": "3f1c7a52-9c1e-4c43-9d5e-0c1c2b6f4a10", "dns_label": "orders-copy" },
        ]});
        RefOr::T(serde_json::from_value(schema).expect("a valid schema"))
    }
}

impl utoipa::ToSchema for CreateInstanceBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CreateInstanceBody")
    }
}
