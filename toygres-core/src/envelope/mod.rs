//! Envelope encryption of images: a random [`DataKey`] per image encrypts every object it stores
//! (see [`object`]), and a [`KeyProvider`] wraps that data key under a key-encryption key that
//! never leaves the provider (a local key file, or a cloud KMS). The catalog records the
//! [`WrappedKey`] with the image; rotating the key-encryption key rewraps it without touching a
//! byte of the image ([`crate::Toygres::rotate_keys`]).
//!
//! What it protects against (see the trust model in the design): whoever reads the blob store
//! sees only ciphertext; whoever writes it can break a restore but not change what it loads, nor
//! swap objects between images, nor rename them within one: each object's key is derived from
//! the data key, the image id and the object's name, and every chunk is authenticated before
//! any byte of it is handed on. A wrapped key is bound to its image, so two records' keys cannot
//! be swapped either.
//!
//! ```
//! use toygres_core::envelope::{object, DataKey};
//! use toygres_core::ImageId;
//! let (key, image) = (DataKey::generate(), ImageId::new());
//! let sealed = object::seal_all(&key, image, "globals.sql.zst", b"CREATE ROLE app;");
//! assert!(!sealed.windows(4).any(|w| w == b"ROLE"));
//! assert_eq!(object::open_all(&key, image, "globals.sql.zst", &sealed).unwrap(), b"CREATE ROLE app;");
//! assert!(object::open_all(&key, image, "db-0000.dump.zst", &sealed).is_err(), "bound to its name");
//! ```

pub mod chain;
pub mod local;
pub mod object;

use crate::error::{Error, Result};
use crate::ids::ImageId;
use async_trait::async_trait;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroize;

pub use chain::KeyChain;
pub use local::LocalKeys;

/// Length of a data key in bytes (AES-256).
pub const DATA_KEY_LEN: usize = 32;

/// One image's data key. `Debug` prints `***`; it is wiped from memory on drop; it serializes as
/// hex only so that a job spec can carry it to an in-process job (executors that start other
/// processes hand it over in a file or Secret, never in arguments or environments).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DataKey([u8; DATA_KEY_LEN]);

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; DATA_KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// The key from its bytes; anything but 32 bytes is [`Error::KeyUnavailable`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let key: [u8; DATA_KEY_LEN] = bytes.try_into().map_err(|_| Error::KeyUnavailable {
            reason: format!("an unwrapped data key has {} bytes, not {DATA_KEY_LEN}", bytes.len()),
        })?;
        Ok(Self(key))
    }

    /// The key as 64 hex digits, for a job's key file or Secret. Never log what this returns.
    pub fn expose_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The key from 64 hex digits (what [`DataKey::expose_hex`] wrote).
    pub fn from_hex(text: &str) -> Result<Self> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| Error::KeyUnavailable { reason: "a data key file does not hold 64 hex digits".into() })?;
        Self::from_bytes(&bytes)
    }

    /// The raw key bytes. Never log what this returns.
    pub fn expose(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(***)")
    }
}

impl TryFrom<String> for DataKey {
    type Error = Error;
    fn try_from(mut text: String) -> Result<Self> {
        let key = Self::from_hex(&text);
        text.zeroize();
        key
    }
}

impl From<DataKey> for String {
    fn from(key: DataKey) -> String {
        key.expose_hex()
    }
}

/// An image's data key as its [`KeyProvider`] wrapped it: safe to store in the catalog, useless
/// without the key-encryption key, and bound to its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The provider that wrapped it, e.g. `local` or `aws-kms`.
    pub provider: String,
    /// The key-encryption key in that provider (a local key id, a KMS key ARN).
    pub key_id: String,
    /// The wrapped bytes, base64.
    #[serde(with = "base64_bytes")]
    pub ciphertext: Vec<u8>,
}

impl WrappedKey {
    /// The catalogs' rule for [`crate::CatalogStore::rewrap_image_key`]: the image's `current`
    /// key must still be `expected`. A plaintext image is [`Error::InvalidRequest`]; another key
    /// (someone rotated it meanwhile) is [`Error::StateConflict`].
    pub fn check_rewrap(image: ImageId, current: Option<&WrappedKey>, expected: &WrappedKey) -> Result<()> {
        match current {
            None => Err(Error::InvalidRequest {
                field: "image",
                reason: format!("image {image} is stored unencrypted; it has no data key to rewrap"),
            }),
            Some(current) if current == expected => Ok(()),
            Some(current) => Err(Error::StateConflict {
                entity: "image key",
                id: image.to_string(),
                expected: format!("wrapped under {}", expected.key_id),
                actual: format!("wrapped under {}", current.key_id),
            }),
        }
    }
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The associated data a data key is wrapped with: it binds the wrapped key to its image.
pub fn key_context(image: ImageId) -> String {
    format!("toygres image data key v1 {image}")
}

/// Holds the key-encryption keys that wrap images' data keys.
///
/// Implementations: [`LocalKeys`] (key files in a directory, or one key from the environment)
/// and an AWS KMS client in `toygres-s3`. Both bind each wrapped key to its image
/// ([`key_context`]); neither ever returns or logs a key-encryption key.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait KeyProvider: Send + Sync {
    /// A short description for messages, e.g. `"local keys in /var/lib/toygres/image-keys"`.
    fn describe(&self) -> String;

    /// The key-encryption key new data keys are wrapped under. Unusable (no key, no access):
    /// [`Error::KeyUnavailable`].
    async fn current_key_id(&self) -> Result<String>;

    /// Wraps `key`, the data key of `image`, under the current key-encryption key.
    async fn wrap(&self, image: ImageId, key: &DataKey) -> Result<WrappedKey>;

    /// Unwraps the data key of `image`. A key-encryption key this provider does not hold, a key
    /// wrapped for another image, or changed bytes: [`Error::KeyUnavailable`].
    async fn unwrap(&self, image: ImageId, wrapped: &WrappedKey) -> Result<DataKey>;
}

/// Whether new images are encrypted, and with which keys.
#[derive(Clone, Default)]
pub enum ImageKeys {
    /// Nothing chosen: creating an image is refused ([`Error::KeyUnavailable`]), so that no
    /// embedder stores plaintext by accident. Restoring a plaintext image still works.
    #[default]
    Unset,
    /// Encrypt every new image under this provider's current key.
    Provider(Arc<dyn KeyProvider>),
    /// Store new images unencrypted, as the embedder explicitly asked; records show it. Encrypted
    /// images still open with the provider given here, if any.
    Plaintext(Option<Arc<dyn KeyProvider>>),
}

impl fmt::Debug for ImageKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageKeys::Unset => f.write_str("Unset"),
            ImageKeys::Provider(p) => f.debug_tuple("Provider").field(&p.describe()).finish(),
            ImageKeys::Plaintext(None) => f.write_str("Plaintext"),
            ImageKeys::Plaintext(Some(p)) => f.debug_tuple("Plaintext").field(&p.describe()).finish(),
        }
    }
}

impl ImageKeys {
    /// The provider, or why there is none: [`Error::KeyUnavailable`].
    pub fn provider(&self) -> Result<&Arc<dyn KeyProvider>> {
        match self {
            ImageKeys::Provider(p) | ImageKeys::Plaintext(Some(p)) => Ok(p),
            ImageKeys::Unset | ImageKeys::Plaintext(None) => Err(Error::KeyUnavailable {
                reason: "no image key provider is configured; configure the key the image was written with".into(),
            }),
        }
    }

    /// A fresh data key for `image`, as its record keeps it: wrapped (`None` for plaintext
    /// images). The jobs unwrap it when they need it. Fails closed: [`Error::KeyUnavailable`]
    /// when nothing was chosen or the provider cannot wrap.
    pub async fn new_data_key(&self, image: ImageId) -> Result<Option<WrappedKey>> {
        match self {
            ImageKeys::Plaintext(_) => Ok(None),
            ImageKeys::Unset => Err(Error::KeyUnavailable {
                reason: "no image key is configured: give the library a KeyProvider (Toygres::with_image_keys) \
                         or ask for unencrypted images explicitly (Toygres::with_plaintext_images)"
                    .into(),
            }),
            ImageKeys::Provider(p) => Ok(Some(p.wrap(image, &DataKey::generate()).await?)),
        }
    }

    /// The data key of an image whose record holds `wrapped` (`None`: a plaintext image).
    pub async fn data_key(&self, image: ImageId, wrapped: Option<&WrappedKey>) -> Result<Option<DataKey>> {
        match wrapped {
            None => Ok(None),
            Some(w) => Ok(Some(self.provider()?.unwrap(image, w).await?)),
        }
    }
}
