//! What a job stores and reads back: sealed under the image's data key when it has one
//! ([`toygres_core::envelope::object`]), counted and hashed as stored, so the manifest's size and
//! sha256 of each object are those of the bytes in the blob store.

use super::jobs::JobCtx;
use super::transfer::Sink;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use toygres_core::envelope::object::{ObjectOpener, ObjectSealer};
use toygres_core::envelope::DataKey;
use toygres_core::manifest::{format_sha256, ManifestObject};
use toygres_core::{Error, ImageId, Result, Transfer};

/// The image a job seals or opens, and its data key.
#[derive(Clone)]
pub(crate) struct Sealing {
    key: DataKey,
    image: ImageId,
}

impl Sealing {
    /// `Some` for an encrypted image (`key` given).
    pub(crate) fn of(key: Option<&DataKey>, image: ImageId) -> Option<Self> {
        key.map(|key| Self { key: key.clone(), image })
    }

    /// The data key.
    pub(crate) fn key(&self) -> &DataKey {
        &self.key
    }
}

/// Counts and hashes stored bytes.
pub(crate) struct Stored {
    hasher: Option<Sha256>,
    size: u64,
}

impl Stored {
    pub(crate) fn new() -> Self {
        Self { hasher: Some(Sha256::new()), size: 0 }
    }

    /// Counts without hashing: for bytes an [`ObjectOpener`] authenticates chunk by chunk
    /// (and whose sha256 a verify pass of the same job has checked already).
    pub(crate) fn counting() -> Self {
        Self { hasher: None, size: 0 }
    }

    pub(crate) fn add(&mut self, data: &[u8]) {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(data);
        }
        self.size += data.len() as u64;
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The manifest entry of object `name` (of hashed bytes).
    pub(crate) fn object(self, name: &str, raw_size: Option<u64>) -> ManifestObject {
        let hasher = self.hasher.expect("a stored object is hashed");
        ManifestObject {
            name: name.to_string(),
            size: self.size,
            sha256: format_sha256(hasher.finalize().into()),
            raw_size,
        }
    }
}

/// Object `name` being written: sealed (when the job has a key), hashed, then stored.
pub(crate) struct ObjectSink {
    sink: Sink,
    sealer: Option<ObjectSealer>,
    stored: Stored,
    buf: Vec<u8>,
    name: String,
}

impl ObjectSink {
    /// Opens object `name` for writing, sealed under `ctx`'s key if it has one.
    pub(crate) fn open(transfer: &Transfer, name: &str, ctx: &JobCtx) -> Result<Self> {
        let sealer = ctx.sealing.as_ref().map(|s| ObjectSealer::new(&s.key, s.image, name));
        let sink = Sink::open(transfer, name, &ctx.log)?;
        Ok(Self { sink, sealer, stored: Stored::new(), buf: Vec::new(), name: name.to_string() })
    }

    /// Appends `data`.
    pub(crate) async fn write(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.sealer {
            None => {
                self.stored.add(data);
                self.sink.write(data).await
            }
            Some(sealer) => {
                sealer.push(data, &mut self.buf);
                self.flush().await
            }
        }
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.stored.add(&self.buf);
        let written = self.sink.write(&self.buf).await;
        self.buf.clear();
        written
    }

    /// Bytes stored so far.
    pub(crate) fn stored_size(&self) -> u64 {
        self.stored.size() + self.buf.len() as u64
    }

    /// Completes the object (its last chunk sealed) and returns its manifest entry.
    pub(crate) async fn finish(mut self, raw_size: Option<u64>) -> Result<ManifestObject> {
        if let Some(sealer) = self.sealer.take() {
            sealer.finish(&mut self.buf);
            if let Err(e) = self.flush().await {
                self.sink.abort().await;
                return Err(e);
            }
        }
        self.sink.finish().await?;
        Ok(self.stored.object(&self.name, raw_size))
    }

    /// Abandons the object.
    pub(crate) async fn abort(self) {
        self.sink.abort().await;
    }
}

/// Turns stored chunks of an object into plaintext: as they are for a plaintext image, through
/// an [`ObjectOpener`] (authenticated chunks only) for an encrypted one.
pub(crate) struct Opening {
    opener: Option<ObjectOpener>,
    buf: Vec<u8>,
}

impl Opening {
    /// Opens object `name` under `sealing` (`None`: plaintext).
    pub(crate) fn new(sealing: Option<&Sealing>, name: &str) -> Self {
        Self { opener: sealing.map(|s| ObjectOpener::new(&s.key, s.image, name)), buf: Vec::new() }
    }

    /// The plaintext `chunk` authenticates (possibly none yet).
    pub(crate) fn push(&mut self, chunk: Bytes) -> Result<Bytes> {
        match &mut self.opener {
            None => Ok(chunk),
            Some(opener) => {
                opener.push(&chunk, &mut self.buf)?;
                Ok(Bytes::from(std::mem::take(&mut self.buf)))
            }
        }
    }

    /// The plaintext of the last chunk, once it is authenticated ([`Error::ImageNotAuthentic`]
    /// for an object cut off or changed at its end).
    pub(crate) fn finish(&mut self) -> Result<Bytes> {
        match self.opener.take() {
            None => Ok(Bytes::new()),
            Some(opener) => {
                opener.finish(&mut self.buf)?;
                Ok(Bytes::from(std::mem::take(&mut self.buf)))
            }
        }
    }
}

/// Checks `stored` against the manifest's entry `expected` of `image`: [`Error::ChecksumMismatch`]
/// for other bytes, [`Error::ImageIncomplete`] for another size.
pub(crate) fn check(image: ImageId, expected: &ManifestObject, stored: Stored) -> Result<()> {
    let size = stored.size();
    if let Some(hasher) = stored.hasher {
        let actual = format_sha256(hasher.finalize().into());
        if actual != expected.sha256 {
            let (object, expected) = (expected.name.clone(), expected.sha256.clone());
            return Err(Error::ChecksumMismatch { image, object, expected, actual });
        }
    }
    if size != expected.size {
        return Err(Error::ImageIncomplete {
            image,
            detail: format!("object {} has {size} bytes, the manifest says {}", expected.name, expected.size),
        });
    }
    Ok(())
}
