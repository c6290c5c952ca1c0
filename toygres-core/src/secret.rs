//! [`Password`]: a secret that never shows itself in `Debug`, `Display`, logs or errors.

use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroize;

/// A PostgreSQL password.
///
/// `Debug` and `Display` print `***`; the value is wiped from memory on drop. The only way
/// to read it is [`Password::expose`], which keeps every use of the secret greppable.
///
/// It serializes as a plain string so that a pipeline step's output (the image's source
/// password) can pass through a durable workflow engine's history, as in the original
/// control plane; catalogs store it sealed (see [`crate::crypto`]).
///
/// ```
/// use toygres_core::Password;
/// let p = Password::new("hunter2");
/// assert_eq!(format!("{p:?} {p}"), "Password(***) ***");
/// assert_eq!(p.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// A random 32-character alphanumeric password.
    pub fn generate() -> Self {
        use rand::distributions::{Alphanumeric, DistString};
        Self(Alphanumeric.sample_string(&mut rand::thread_rng(), 32))
    }

    /// The secret itself. Never log or format what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the password is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_the_secret() {
        let p = Password::new("s3cr3t-value");
        for shown in [format!("{p:?}"), format!("{p}"), format!("{p:#?}")] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        assert_eq!(p.expose(), "s3cr3t-value");
    }

    #[test]
    fn generated_passwords_differ() {
        let (a, b) = (Password::generate(), Password::generate());
        assert_eq!(a.expose().len(), 32);
        assert_ne!(a, b);
    }
}
