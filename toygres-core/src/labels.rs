//! Labels: key/value pairs an embedder attaches to images and instances, to find them again
//! ([`crate::ImageFilter::label`]) and to keep them ([`crate::RetentionPolicy::keep_labelled`]).

use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Key/value labels, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 63;
/// Longest value, in bytes.
pub const MAX_VALUE_LEN: usize = 256;
/// Most labels on one record.
pub const MAX_LABELS: usize = 64;

/// Checks labels: at most [`MAX_LABELS`]; keys of 1-[`MAX_KEY_LEN`] bytes of `a-z`, `0-9`, `-`,
/// `_`, `.` and `/`, starting with an alphanumeric character; values up to [`MAX_VALUE_LEN`]
/// bytes of any text without control characters.
///
/// ```
/// use toygres_core::labels::{validate_labels, Labels};
/// let ok: Labels = [("team".to_string(), "payments".to_string())].into();
/// assert!(validate_labels(&ok).is_ok());
/// let bad: Labels = [("Team Name".to_string(), "x".to_string())].into();
/// assert!(validate_labels(&bad).is_err());
/// ```
pub fn validate_labels(labels: &Labels) -> Result<()> {
    let invalid = |reason: String| Error::InvalidRequest { field: "labels", reason };
    if labels.len() > MAX_LABELS {
        return Err(invalid(format!("{} labels, at most {MAX_LABELS} are allowed", labels.len())));
    }
    for (key, value) in labels {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_KEY_LEN
            && key.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./".contains(c));
        if !key_ok {
            return Err(invalid(format!(
                "key {key:?} is not allowed: use 1-{MAX_KEY_LEN} of a-z, 0-9, '-', '_', '.', '/', starting alphanumeric"
            )));
        }
        if value.len() > MAX_VALUE_LEN || value.chars().any(char::is_control) {
            return Err(invalid(format!(
                "value of {key:?} is not allowed: up to {MAX_VALUE_LEN} bytes without control characters"
            )));
        }
    }
    Ok(())
}

/// Whether `labels` holds every pair of `required` (an empty `required` matches everything).
pub fn has_all(labels: &Labels, required: &Labels) -> bool {
    required.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(k: &str, v: &str) -> Labels {
        [(k.to_string(), v.to_string())].into()
    }

    #[test]
    fn keys_and_values_are_checked() {
        for ok in ["a", "app.kubernetes.io/name", "x_1-2", &"k".repeat(63)] {
            assert!(validate_labels(&one(ok, "v")).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "A", "a b", "a\"b", "é", &"k".repeat(64)] {
            assert!(validate_labels(&one(bad, "v")).is_err(), "{bad:?}");
        }
        assert!(validate_labels(&one("k", "line\nbreak")).is_err());
        assert!(validate_labels(&one("k", &"v".repeat(257))).is_err());
        let many: Labels = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(validate_labels(&many).is_err());
    }

    #[test]
    fn has_all_needs_every_pair() {
        let mut labels = one("team", "a");
        labels.insert("tier".into(), "gold".into());
        assert!(has_all(&labels, &Labels::new()));
        assert!(has_all(&labels, &one("tier", "gold")));
        assert!(!has_all(&labels, &one("tier", "silver")));
        assert!(!has_all(&one("team", "a"), &labels));
    }
}
