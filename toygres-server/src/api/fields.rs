//! Schemas of single fields that the request bodies share (labels, DNS labels), written by hand
//! because the derive cannot express what the library checks.

use serde_json::json;
use utoipa::openapi::Schema;

/// A DNS-1123 label, as `toygres_core::request::validate_dns1123_label` checks it.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Labels as `toygres_core::labels::validate_labels` checks them: at most 64; keys of 1-63 of
/// `a-z 0-9 - _ . /` starting alphanumeric; values without control characters, at most 256 bytes
/// (the schema says 64 characters, which any encoding keeps within 256 bytes).
pub fn labels_json() -> serde_json::Value {
    json!({
        "type": "object",
        "maxProperties": 64,
        "propertyNames": { "type": "string", "pattern": r"^[a-z0-9][-a-z0-9_./]{0,62}$" },
        "additionalProperties": { "type": "string", "maxLength": 64, "pattern": r"^[^\x00-\x1f\x7f-\x9f]*$" },
        "description": "Labels to find the record by (`GET` with `labels=key=value,...`).",
    })
}

/// [`labels_json`] as a schema, for the derived request bodies.
pub fn labels() -> Schema {
    serde_json::from_value(labels_json()).expect("a valid schema")
}
