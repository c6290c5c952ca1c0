//! Schemas of single fields that the request bodies share (labels, DNS labels), written by hand
//! because the derive cannot express what the library checks; and how whole numbers are read.

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

/// Deserializes an optional whole number the way JSON Schema's `integer` reads it: `7` and `7.0`
/// alike (a schema-valid body is never refused for the spelling of a number), within `T`'s range.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let Some(number) = <Option<serde_json::Number> as serde::Deserialize>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        number.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64).map(|f| f as u64)
    });
    let whole = whole.ok_or_else(|| D::Error::custom(format!("{number} is not a whole number of 0 or more")))?;
    T::try_from(whole).map(Some).map_err(|_| D::Error::custom(format!("{number} is too large")))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::whole_number")]
        n: Option<u32>,
    }

    #[test]
    fn whole_numbers_read_as_json_schema_integers() {
        let n = |json: &str| serde_json::from_str::<Body>(json).map(|b| b.n).map_err(|e| e.to_string());
        assert_eq!(n(r#"{"n": 7}"#), Ok(Some(7)));
        assert_eq!(n(r#"{"n": 252.0}"#), Ok(Some(252)));
        assert_eq!(n(r#"{}"#), Ok(None));
        assert_eq!(n(r#"{"n": null}"#), Ok(None));
        assert!(n(r#"{"n": 2.5}"#).unwrap_err().contains("whole number"));
        assert!(n(r#"{"n": -1}"#).unwrap_err().contains("whole number"));
        assert!(n(r#"{"n": 5000000000}"#).unwrap_err().contains("too large"));
    }
}
