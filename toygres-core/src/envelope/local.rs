//! [`LocalKeys`]: key-encryption keys kept in files (or one from the environment).
//!
//! A key directory holds `<key-id>.key` files (64 hex digits, mode 0600) and a `current` file
//! naming the key new images are wrapped under. It is read on every call, so a key added by
//! `toygres keys rotate` is seen by a running server without a restart. A data key is wrapped
//! with XChaCha20-Poly1305 (random 192-bit nonce), bound to its image and key id.

use super::{key_context, DataKey, KeyProvider, WrappedKey};
use crate::error::{Error, Result};
use crate::ids::ImageId;
use async_trait::async_trait;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The provider name recorded in [`WrappedKey::provider`].
pub const PROVIDER: &str = "local";
const NONCE_LEN: usize = 24;
const CURRENT: &str = "current";

/// Where the keys are.
#[derive(Clone)]
enum Source {
    Dir(PathBuf),
    Fixed { id: String, key: Zeroizing<[u8; 32]> },
}

/// Key-encryption keys in a directory, or a single key given as hex (e.g. from the environment).
///
/// ```
/// # tokio_test_block_on(async {
/// use toygres_core::envelope::{DataKey, KeyProvider, LocalKeys};
/// use toygres_core::ImageId;
/// let dir = std::env::temp_dir().join(format!("toygres-doc-keys-{}", std::process::id()));
/// let keys = LocalKeys::open_or_create(&dir).unwrap();
/// let (image, key) = (ImageId::new(), DataKey::generate());
/// let wrapped = keys.wrap(image, &key).await.unwrap();
/// assert_eq!(keys.unwrap(image, &wrapped).await.unwrap(), key);
/// assert!(keys.unwrap(ImageId::new(), &wrapped).await.is_err(), "bound to its image");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct LocalKeys {
    source: Source,
}

fn unavailable(reason: String) -> Error {
    Error::KeyUnavailable { reason }
}

/// Key ids name files: letters, digits and `-` only, so an id read from the catalog can never
/// point outside the key directory.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(unavailable(format!("{id:?} is not a local key id (letters, digits and '-')")));
    }
    Ok(())
}

fn parse_key(text: &str, what: &str) -> Result<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| unavailable(format!("{what} is not hex")))?);
    let key: [u8; 32] =
        bytes.as_slice().try_into().map_err(|_| unavailable(format!("{what} does not hold 64 hex digits")))?;
    Ok(Zeroizing::new(key))
}

/// Writes `data` to `path` atomically (a temporary file of this writer's own renamed over it:
/// two processes creating the first key at once never write into each other's), mode 0600.
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp-{}-{:08x}", std::process::id(), rand::RngCore::next_u32(&mut OsRng)));
    let io = |e: std::io::Error| unavailable(format!("cannot write {}: {e}", path.display()));
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
    file.write_all(data).and_then(|_| file.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl LocalKeys {
    /// The keys in `dir`, creating it (mode 0700) with a first key when it has none: the
    /// embedded default's set-up, like its catalog key.
    pub fn open_or_create(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        if !dir.join(CURRENT).exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
            let keys = Self { source: Source::Dir(dir.clone()) };
            keys.new_key()?;
        }
        Ok(Self { source: Source::Dir(dir) })
    }

    /// The keys in `dir`, which must exist (its `current` file is read on use).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(unavailable(format!("the image key directory {} does not exist", dir.display())));
        }
        Ok(Self { source: Source::Dir(dir) })
    }

    /// A single key from 64 hex digits (e.g. an environment variable). Its id is `env-` and a
    /// fingerprint, so images record which key they need without revealing it.
    pub fn from_hex(hex_key: &str) -> Result<Self> {
        let key = parse_key(hex_key, "the image key")?;
        let id = format!("env-{}", &hex::encode(Sha256::digest(key.as_ref()))[..16]);
        Ok(Self { source: Source::Fixed { id, key } })
    }

    /// The key directory, if the keys live in one.
    pub fn dir(&self) -> Option<&Path> {
        match &self.source {
            Source::Dir(dir) => Some(dir),
            Source::Fixed { .. } => None,
        }
    }

    /// Generates a key, stores it and makes it current; returns its id. Keys given as hex
    /// cannot grow: [`Error::KeyUnavailable`].
    pub fn new_key(&self) -> Result<String> {
        let Some(dir) = self.dir() else {
            return Err(unavailable("a key given as hex cannot add keys; use a key directory".into()));
        };
        let mut suffix = [0u8; 3];
        rand::RngCore::fill_bytes(&mut OsRng, &mut suffix);
        let id = format!("{}-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"), hex::encode(suffix));
        let key = Zeroizing::new(hex::encode(XChaCha20Poly1305::generate_key(&mut OsRng)));
        write_private(&dir.join(format!("{id}.key")), key.as_bytes())?;
        write_private(&dir.join(CURRENT), id.as_bytes())?;
        Ok(id)
    }

    /// Every key id held, sorted (oldest first for generated ids).
    pub fn key_ids(&self) -> Result<Vec<String>> {
        let dir = match &self.source {
            Source::Fixed { id, .. } => return Ok(vec![id.clone()]),
            Source::Dir(dir) => dir,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| unavailable(format!("cannot list {}: {e}", dir.display())))?;
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".key").map(str::to_string))
            .filter(|id| check_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Deletes key `id` for good. The current key is refused; check first that no image still
    /// needs it (`Toygres::key_usage`).
    pub fn remove_key(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let Some(dir) = self.dir() else {
            return Err(unavailable("a key given as hex cannot be removed here; unset it instead".into()));
        };
        if self.current()? == id {
            return Err(unavailable(format!("key {id} is the current key; rotate to a new key before removing it")));
        }
        match std::fs::remove_file(dir.join(format!("{id}.key"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(unavailable(format!("cannot remove key {id}: {e}")))
            }
            _ => Ok(()),
        }
    }

    fn current(&self) -> Result<String> {
        match &self.source {
            Source::Fixed { id, .. } => Ok(id.clone()),
            Source::Dir(dir) => {
                let file = dir.join(CURRENT);
                let id = std::fs::read_to_string(&file)
                    .map_err(|e| unavailable(format!("cannot read {}: {e}", file.display())))?;
                let id = id.trim().to_string();
                check_id(&id)?;
                Ok(id)
            }
        }
    }

    fn key(&self, id: &str) -> Result<Zeroizing<[u8; 32]>> {
        check_id(id)?;
        match &self.source {
            Source::Fixed { id: held, key } if held == id => Ok(key.clone()),
            Source::Fixed { id: held, .. } => {
                Err(unavailable(format!("the image needs key {id}; only {held} is given")))
            }
            Source::Dir(dir) => {
                let file = dir.join(format!("{id}.key"));
                let text = Zeroizing::new(std::fs::read_to_string(&file).map_err(|e| {
                    unavailable(format!("the image needs key {id}, which {} lacks ({e})", dir.display()))
                })?);
                parse_key(&text, &format!("key file {}", file.display()))
            }
        }
    }
}

fn aad(image: ImageId, key_id: &str) -> Vec<u8> {
    format!("{}\0{key_id}", key_context(image)).into_bytes()
}

#[async_trait]
impl KeyProvider for LocalKeys {
    fn describe(&self) -> String {
        match &self.source {
            Source::Dir(dir) => format!("local image keys in {}", dir.display()),
            Source::Fixed { id, .. } => format!("local image key {id}"),
        }
    }

    async fn current_key_id(&self) -> Result<String> {
        let id = self.current()?;
        self.key(&id)?;
        Ok(id)
    }

    async fn wrap(&self, image: ImageId, key: &DataKey) -> Result<WrappedKey> {
        let key_id = self.current()?;
        let kek = self.key(&key_id)?;
        let cipher = XChaCha20Poly1305::new(kek.as_ref().into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload { msg: key.expose(), aad: &aad(image, &key_id) };
        let sealed = cipher.encrypt(&nonce, payload).map_err(|_| unavailable("wrapping a data key failed".into()))?;
        let mut ciphertext = nonce.to_vec();
        ciphertext.extend_from_slice(&sealed);
        Ok(WrappedKey { provider: PROVIDER.into(), key_id, ciphertext })
    }

    async fn unwrap(&self, image: ImageId, wrapped: &WrappedKey) -> Result<DataKey> {
        if wrapped.provider != PROVIDER {
            return Err(unavailable(format!(
                "image {image}'s key was wrapped by {}, but {} is configured",
                wrapped.provider,
                self.describe()
            )));
        }
        let kek = self.key(&wrapped.key_id)?;
        if wrapped.ciphertext.len() < NONCE_LEN {
            return Err(unavailable(format!("image {image}'s wrapped key is too short")));
        }
        let cipher = XChaCha20Poly1305::new(kek.as_ref().into());
        let (nonce, sealed) = wrapped.ciphertext.split_at(NONCE_LEN);
        let payload = Payload { msg: sealed, aad: &aad(image, &wrapped.key_id) };
        let plain = Zeroizing::new(cipher.decrypt(XNonce::from_slice(nonce), payload).map_err(|_| {
            unavailable(format!(
                "image {image}'s data key does not unwrap under key {}: changed, or wrapped for another image",
                wrapped.key_id
            ))
        })?);
        DataKey::from_bytes(&plain)
    }
}

#[cfg(test)]
mod tests;
