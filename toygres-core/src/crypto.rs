//! Sealing passwords at rest: catalogs store [`CatalogKey::seal`]ed bytes, never plain text.
//!
//! XChaCha20-Poly1305 (authenticated) with a random 192-bit nonce per value. The key is supplied
//! by the embedder and never enters the database. Opening with the wrong key, or a value whose
//! bytes were changed, fails with [`Error::WrongKey`].

use crate::error::{Error, Result};
use crate::secret::Password;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fmt;

const NONCE_LEN: usize = 24;
const VERSION: u8 = 1;

/// A 256-bit key that seals catalog secrets.
///
/// ```
/// use toygres_core::{crypto::CatalogKey, Password};
/// let key = CatalogKey::generate();
/// let sealed = key.seal(&Password::new("pw"));
/// assert_eq!(key.open(&sealed).unwrap().expose(), "pw");
/// assert!(CatalogKey::generate().open(&sealed).is_err());
/// ```
#[derive(Clone)]
pub struct CatalogKey(chacha20poly1305::Key);

impl CatalogKey {
    /// A random key (tests, or first-time set-up; store it somewhere safe).
    pub fn generate() -> Self {
        Self(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// A key from 64 hex digits.
    pub fn from_hex(hex_key: &str) -> Result<Self> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| Error::InvalidRequest {
            field: "catalog key",
            reason: "not hex; expected 64 hex digits (32 bytes)".into(),
        })?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| Error::InvalidRequest {
            field: "catalog key",
            reason: "wrong length; expected 64 hex digits (32 bytes)".into(),
        })?;
        Ok(Self(arr.into()))
    }

    /// The key from environment variable `var` (64 hex digits).
    pub fn from_env(var: &str) -> Result<Self> {
        let value = std::env::var(var).map_err(|_| Error::InvalidRequest {
            field: "catalog key",
            reason: format!("environment variable {var} is not set; set it to 64 hex digits"),
        })?;
        Self::from_hex(&value)
    }

    /// The key as 64 hex digits, to store it. Treat the result as a secret.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// `version ‖ nonce ‖ ciphertext+tag`.
    pub fn seal(&self, password: &Password) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(&self.0);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = cipher.encrypt(&nonce, password.expose().as_bytes()).expect("encryption cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens what [`CatalogKey::seal`] produced.
    pub fn open(&self, sealed: &[u8]) -> Result<Password> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(Error::WrongKey);
        }
        let cipher = XChaCha20Poly1305::new(&self.0);
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        let plain = cipher.decrypt(nonce, &sealed[1 + NONCE_LEN..]).map_err(|_| Error::WrongKey)?;
        String::from_utf8(plain).map(Password::new).map_err(|_| Error::WrongKey)
    }
}

impl fmt::Debug for CatalogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CatalogKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_is_randomised_authenticated_and_hides_the_plaintext() {
        let key = CatalogKey::generate();
        let pw = Password::new("correct horse battery staple");
        let (a, b) = (key.seal(&pw), key.seal(&pw));
        assert_ne!(a, b, "nonce must differ per value");
        assert!(!a.windows(7).any(|w| w == b"correct"));
        let mut tampered = a.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(key.open(&tampered), Err(Error::WrongKey)));
        assert_eq!(key.open(&a).unwrap(), pw);
        let again = CatalogKey::from_hex(&key.to_hex()).unwrap();
        assert_eq!(again.open(&b).unwrap(), pw);
        assert!(CatalogKey::from_hex("abcd").is_err());
        assert_eq!(format!("{key:?}"), "CatalogKey(***)");
    }
}
