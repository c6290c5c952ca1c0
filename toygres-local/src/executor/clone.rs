//! Clone images ([`ImageFormat::Clone`]): work in progress.

use super::Inner;
use toygres_core::{Error, ImageFormat};

/// Refuses clone images (not built yet).
pub(crate) fn unsupported(inner: &Inner) -> Error {
    let _ = inner;
    Error::UnsupportedFormat { format: ImageFormat::Clone, reason: "not built yet".into() }
}
