//! Hand-written schema parts that the derive cannot express: `POST /api/instances` is either a
//! fresh instance (`password` required), a restore (`source_image_id` required), never both
//! with `runtime_image_id` / `image_override`, or a point-in-time restore (`point_in_time`
//! required, without `source_image_id`).

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
                "point_in_time": { "type": "null" },
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
                "point_in_time": { "type": "null" },
            },
        });
        let point_in_time = json!({
            "title": "Point-in-time restore",
            "description": "A new instance at a moment of a protected instance's WAL archive \
                            (`GET /api/instances/{id}/recovery-window` has the moments): its newest base image \
                            before the target, then its WAL replayed up to the target. It uses the protected \
                            instance's password; `password` is accepted and ignored. Refusals, with nothing created: \
                            an instance not protected (409 `instance_not_protected`), more than one target or a time \
                            or LSN that does not parse (422 `invalid_point_in_time`), a target outside the window \
                            (422 `outside_recovery_window`).",
            "type": "object",
            "required": ["name", "point_in_time"],
            "additionalProperties": false,
            "properties": {
                "name": label,
                "point_in_time": {
                    "type": "object",
                    "required": ["instance_id"],
                    "additionalProperties": false,
                    "description": "The protected instance and at most one of `time`, `lsn` and `restore_point` \
                                    (none: the latest moment its archive holds).",
                    "properties": {
                        "instance_id": { "type": "string", "format": "uuid",
                                         "description": "The protected instance (it may since have been deleted)." },
                        "time": { "type": ["string", "null"], "format": "date-time",
                                  "description": "Every transaction committed at or before this moment (RFC 3339)." },
                        "lsn": { "type": ["string", "null"], "pattern": "^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$",
                                 "description": "Up to and including the WAL record at this position, e.g. `0/3000148`." },
                        "restore_point": { "type": ["string", "null"], "minLength": 1, "maxLength": 63,
                                           "description": "Up to this restore point (`POST /api/instances/{id}/restore-points`)." },
                    },
                },
                "dns_label": optional_label,
                "password": { "type": ["string", "null"], "description": "Ignored." },
                "source_image_id": { "type": "null" },
                "runtime_image_id": { "type": "null" },
                "image_override": { "type": "null" },
                "databases": { "type": "null" },
                "labels": labels,
            },
        });
        let schema = json!({ "oneOf": [fresh, restore, point_in_time], "examples": [
            { "name": "scratch", "password": "Change-me-2026" },
            { "name": "orders-copy", "source_image_id": "3f1c7a52-9c1e-4c43-9d5e-0c1c2b6f4a10", "dns_label": "orders-copy" },
            { "name": "orders-before-drop", "point_in_time": { "instance_id": "8d0c3a7e-1b2f-4e5a-9c6d-7e8f9a0b1c2d",
                                                               "time": "2026-12-05T10:00:00Z" } },
        ]});
        RefOr::T(serde_json::from_value(schema).expect("a valid schema"))
    }
}

impl utoipa::ToSchema for CreateInstanceBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CreateInstanceBody")
    }
}
