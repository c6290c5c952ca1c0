//! Cross-crate end-to-end tests; see the `[[test]]` targets.
