//! The stored form of an encrypted object, written and read as a stream in constant memory.
//!
//! ```text
//! "TGSEAL" 0x00 0x01 ‖ salt (16 random bytes) ‖ chunk₀ ‖ chunk₁ ‖ … ‖ chunkₙ (last)
//! ```
//! Each chunk is [`CHUNK`] bytes of plaintext (the last one 0 to [`CHUNK`]) sealed with
//! AES-256-GCM in the STREAM construction of the `aead` crate (`StreamBE32`: a 32-bit counter and
//! a last-chunk flag in the nonce), so chunks cannot be reordered, dropped or cut off at a chunk
//! boundary. The object's key is HKDF-SHA256 of the image's data key, with the header's salt,
//! over the image id and the object's name: the same bytes under another image or name do not
//! open, and a re-run of a job that rewrites an object never reuses a key and nonce.
//!
//! An [`ObjectOpener`] hands on only plaintext of chunks it has authenticated; the end of the
//! object is authenticated by [`ObjectOpener::finish`], so a consumer must treat what it loaded
//! as void until `finish` succeeded (restores load into a fresh instance that a failure removes).

use super::DataKey;
use crate::error::{Error, Result};
use crate::ids::ImageId;
use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

/// The first bytes of every encrypted object.
pub const MAGIC: &[u8; 8] = b"TGSEAL\x00\x01";
/// Plaintext bytes per chunk (the last may be shorter).
pub const CHUNK: usize = 64 * 1024;
/// Authentication tag per chunk.
pub const TAG: usize = 16;
const SALT: usize = 16;
/// Bytes before the first chunk.
pub const HEADER: usize = MAGIC.len() + SALT;
/// The STREAM nonce prefix: zero, since every object has its own key.
const PREFIX: [u8; 7] = [0; 7];

/// The stored size of an object of `plain` bytes.
pub fn sealed_len(plain: u64) -> u64 {
    let chunk = CHUNK as u64;
    let full = if plain == 0 { 0 } else { (plain - 1) / chunk };
    HEADER as u64 + plain + (full + 1) * TAG as u64
}

fn object_cipher(key: &DataKey, salt: &[u8], image: ImageId, name: &str) -> Aes256Gcm {
    let info = format!("toygres object v1\0{image}\0{name}");
    let mut okm = zeroize::Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), key.expose())
        .expand(info.as_bytes(), okm.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Aes256Gcm::new_from_slice(okm.as_ref()).expect("32-byte key")
}

/// Encrypts one object as it streams: [`ObjectSealer::push`] what comes, then
/// [`ObjectSealer::finish`]; append each call's output to the object in order.
pub struct ObjectSealer {
    stream: EncryptorBE32<Aes256Gcm>,
    pending: Vec<u8>,
    header: Option<[u8; HEADER]>,
}

impl ObjectSealer {
    /// Starts object `name` of `image`.
    pub fn new(key: &DataKey, image: ImageId, name: &str) -> Self {
        let mut header = [0u8; HEADER];
        header[..MAGIC.len()].copy_from_slice(MAGIC);
        rand::rngs::OsRng.fill_bytes(&mut header[MAGIC.len()..]);
        let cipher = object_cipher(key, &header[MAGIC.len()..], image, name);
        let stream = EncryptorBE32::from_aead(cipher, PREFIX.as_ref().into());
        Self { stream, pending: Vec::with_capacity(2 * CHUNK), header: Some(header) }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if let Some(header) = self.header.take() {
            out.extend_from_slice(&header);
        }
    }

    /// Takes `data` and appends to `out` whatever is ready to store (whole chunks; a chunk is
    /// held back until more data shows it is not the last).
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        self.start(out);
        while !data.is_empty() {
            if self.pending.len() == CHUNK {
                self.seal_pending(out);
            }
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    fn seal_pending(&mut self, out: &mut Vec<u8>) {
        self.stream.encrypt_next_in_place(b"", &mut self.pending).expect("a chunk of CHUNK bytes always seals");
        out.extend_from_slice(&self.pending);
        self.pending.clear();
    }

    /// Seals the last chunk and appends it to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.start(out);
        let mut last = std::mem::take(&mut self.pending);
        self.stream.encrypt_last_in_place(b"", &mut last).expect("the last chunk always seals");
        out.extend_from_slice(&last);
    }
}

/// Decrypts one object as it streams, handing on only authenticated plaintext.
pub struct ObjectOpener {
    key: Option<(DataKey, ImageId, String)>,
    stream: Option<DecryptorBE32<Aes256Gcm>>,
    pending: Vec<u8>,
    image: ImageId,
    name: String,
}

impl ObjectOpener {
    /// Starts reading object `name` of `image`.
    pub fn new(key: &DataKey, image: ImageId, name: &str) -> Self {
        Self {
            key: Some((key.clone(), image, name.to_string())),
            stream: None,
            pending: Vec::with_capacity(2 * (CHUNK + TAG)),
            image,
            name: name.to_string(),
        }
    }

    fn refused(&self, why: &str) -> Error {
        Error::ImageNotAuthentic { image: self.image, object: self.name.clone(), detail: why.to_string() }
    }

    /// Takes stored bytes and appends to `out` the plaintext of every chunk now known not to be
    /// the last and authenticated. Changed bytes: [`Error::ImageNotAuthentic`].
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.pending.extend_from_slice(data);
        if self.stream.is_none() {
            if self.pending.len() < HEADER {
                return Ok(());
            }
            if &self.pending[..MAGIC.len()] != MAGIC {
                return Err(self.refused("it does not start like an encrypted toygres object"));
            }
            let (key, image, name) = self.key.take().expect("key kept until the header");
            let cipher = object_cipher(&key, &self.pending[MAGIC.len()..HEADER], image, &name);
            self.stream = Some(DecryptorBE32::from_aead(cipher, PREFIX.as_ref().into()));
            self.pending.drain(..HEADER);
        }
        let mut start = 0;
        while self.pending.len() - start > CHUNK + TAG {
            let mut chunk = self.pending[start..start + CHUNK + TAG].to_vec();
            let stream = self.stream.as_mut().expect("stream started");
            if stream.decrypt_next_in_place(b"", &mut chunk).is_err() {
                return Err(self.refused("a chunk failed authentication (changed, moved or from another object)"));
            }
            out.extend_from_slice(&chunk);
            start += CHUNK + TAG;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Authenticates the last chunk and appends its plaintext to `out`. A cut-off object:
    /// [`Error::ImageNotAuthentic`].
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<()> {
        let Some(stream) = self.stream.take() else {
            return Err(self.refused("it ends before its header"));
        };
        let mut last = std::mem::take(&mut self.pending);
        if last.len() < TAG || stream.decrypt_last_in_place(b"", &mut last).is_err() {
            return Err(self.refused("its last chunk failed authentication (changed or cut off)"));
        }
        out.extend_from_slice(&last);
        Ok(())
    }
}

/// Seals a whole small object (the manifest, in tests).
pub fn seal_all(key: &DataKey, image: ImageId, name: &str, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sealed_len(plain.len() as u64) as usize);
    let mut sealer = ObjectSealer::new(key, image, name);
    sealer.push(plain, &mut out);
    sealer.finish(&mut out);
    out
}

/// Opens a whole small object.
pub fn open_all(key: &DataKey, image: ImageId, name: &str, sealed: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(sealed.len());
    let mut opener = ObjectOpener::new(key, image, name);
    opener.push(sealed, &mut out)?;
    opener.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
