//! Sealing passwords at rest: catalogs store [`CatalogKey::seal`]ed bytes, never plain text.
//!
//! XChaCha20-Poly1305 (authenticated) with a random 192-bit nonce per value. The key is supplied
//! by the embedder and never enters the database. Opening with the wrong key, or a value whose
//! bytes were changed, fails with [`Error::WrongKey`].

use crate::error::{Error, Result};
use crate::secret::Password;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fmt;

const NONCE_LEN: usize = 24;
const VERSION: u8 = 1;
/// Sealed with the record it belongs to as associated data.
const BOUND_VERSION: u8 = 2;

/// The record name image `id`'s source password is sealed for.
pub fn image_record(id: crate::ImageId) -> String {
    format!("image {id} source password")
}

/// The record name instance `id`'s password is sealed for.
pub fn instance_record(id: crate::InstanceId) -> String {
    format!("instance {id} password")
}

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

    /// `version ‖ nonce ‖ ciphertext+tag`, not bound to any record (the catalogs' key check).
    /// Secrets of records use [`CatalogKey::seal_for`].
    pub fn seal(&self, password: &Password) -> Vec<u8> {
        self.seal_with(VERSION, password, b"")
    }

    /// Seals `password` bound to `record` (e.g. [`image_record`], [`instance_record`]): it opens
    /// only with [`CatalogKey::open_for`] of the same record, so whoever can write the catalog
    /// cannot move one record's sealed password to another.
    pub fn seal_for(&self, password: &Password, record: &str) -> Vec<u8> {
        self.seal_with(BOUND_VERSION, password, record.as_bytes())
    }

    fn seal_with(&self, version: u8, password: &Password, aad: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(&self.0);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload { msg: password.expose().as_bytes(), aad };
        let ct = cipher.encrypt(&nonce, payload).expect("encryption cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(version);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens what [`CatalogKey::seal`] produced.
    pub fn open(&self, sealed: &[u8]) -> Result<Password> {
        self.open_with(VERSION, sealed, b"")
    }

    /// Opens what [`CatalogKey::seal_for`] produced for `record`. Values sealed unbound by
    /// earlier releases (version 1) still open, so existing catalogs keep working; each is
    /// bound the next time it is written.
    pub fn open_for(&self, sealed: &[u8], record: &str) -> Result<Password> {
        match sealed.first() {
            Some(&VERSION) => self.open(sealed),
            _ => self.open_with(BOUND_VERSION, sealed, record.as_bytes()),
        }
    }

    /// `sealed` bound to `record` when an earlier release sealed it unbound (version 1), for
    /// catalogs to rewrite once; `None` when it is bound already. Wrong key: [`Error::WrongKey`].
    pub fn rebind(&self, sealed: &[u8], record: &str) -> Result<Option<Vec<u8>>> {
        match sealed.first() {
            Some(&VERSION) => Ok(Some(self.seal_for(&self.open(sealed)?, record))),
            _ => Ok(None),
        }
    }

    fn open_with(&self, version: u8, sealed: &[u8], aad: &[u8]) -> Result<Password> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != version {
            return Err(Error::WrongKey);
        }
        let cipher = XChaCha20Poly1305::new(&self.0);
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        let payload = Payload { msg: &sealed[1 + NONCE_LEN..], aad };
        let plain = cipher.decrypt(nonce, payload).map_err(|_| Error::WrongKey)?;
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

    #[test]
    fn bound_values_open_only_for_their_record() {
        let key = CatalogKey::generate();
        let (a, b) = (crate::ImageId::new(), crate::ImageId::new());
        let sealed = key.seal_for(&Password::new("pw-a"), &image_record(a));
        assert_eq!(key.open_for(&sealed, &image_record(a)).unwrap().expose(), "pw-a");
        assert!(matches!(key.open_for(&sealed, &image_record(b)), Err(Error::WrongKey)), "moved to another record");
        assert!(key.open(&sealed).is_err(), "a bound value is not an unbound one");
        let legacy = key.seal(&Password::new("old"));
        assert_eq!(key.open_for(&legacy, &image_record(b)).unwrap().expose(), "old", "version 1 still opens");
        let bound = key.rebind(&legacy, &image_record(b)).unwrap().expect("version 1 is rebound");
        assert_eq!(key.open_for(&bound, &image_record(b)).unwrap().expose(), "old");
        assert!(key.open_for(&bound, &image_record(a)).is_err(), "rebound values are bound");
        assert_eq!(key.rebind(&bound, &image_record(b)).unwrap(), None, "bound values are left as they are");
    }
}
