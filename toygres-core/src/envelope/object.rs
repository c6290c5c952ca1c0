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
use aes_gcm::aead::{AeadInPlace, KeyInit, Nonce};
use aes_gcm::{Aes256Gcm, Tag};
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

/// The STREAM nonce of chunk `position` (`StreamBE32` of the `aead` crate: prefix, 32-bit
/// big-endian counter, last-chunk flag), so chunks are sealed and opened in place in the caller's
/// buffer; `tests::the_format_is_aead_stream_be32` checks it against the crate's own encryptor.
fn nonce(position: u32, last: bool) -> Nonce<Aes256Gcm> {
    let mut nonce = Nonce::<Aes256Gcm>::default();
    nonce[PREFIX.len()..PREFIX.len() + 4].copy_from_slice(&position.to_be_bytes());
    nonce[PREFIX.len() + 4] = last as u8;
    nonce
}

/// Encrypts one object as it streams: [`ObjectSealer::push`] what comes, then
/// [`ObjectSealer::finish`]; append each call's output to the object in order.
pub struct ObjectSealer {
    cipher: Aes256Gcm,
    position: u32,
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
        Self { cipher, position: 0, pending: Vec::with_capacity(CHUNK), header: Some(header) }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if let Some(header) = self.header.take() {
            out.extend_from_slice(&header);
        }
    }

    /// Appends `plain` to `out` sealed as chunk number `self.position`.
    fn seal(&mut self, plain: &[u8], last: bool, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(plain);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(self.position, last), b"", &mut out[at..])
            .expect("a chunk of at most CHUNK bytes always seals");
        out.extend_from_slice(&tag);
        self.position = self.position.checked_add(1).expect("objects stay under 2^32 chunks (256 TiB)");
    }

    /// Takes `data` and appends to `out` whatever is ready to store (whole chunks; a chunk is
    /// held back until more data shows it is not the last).
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        self.start(out);
        while !data.is_empty() {
            if self.pending.len() == CHUNK {
                let full = std::mem::take(&mut self.pending);
                self.seal(&full, false, out);
                self.pending = full;
                self.pending.clear();
            }
            if self.pending.is_empty() && data.len() > CHUNK {
                // A whole chunk with more behind it: sealed straight from the input.
                self.seal(&data[..CHUNK], false, out);
                data = &data[CHUNK..];
                continue;
            }
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// Seals the last chunk and appends it to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.start(out);
        let last = std::mem::take(&mut self.pending);
        self.seal(&last, true, out);
    }
}

/// Decrypts one object as it streams, handing on only authenticated plaintext.
pub struct ObjectOpener {
    key: Option<(DataKey, ImageId, String)>,
    cipher: Option<Aes256Gcm>,
    position: u32,
    pending: Vec<u8>,
    image: ImageId,
    name: String,
}

impl ObjectOpener {
    /// Starts reading object `name` of `image`.
    pub fn new(key: &DataKey, image: ImageId, name: &str) -> Self {
        Self {
            key: Some((key.clone(), image, name.to_string())),
            cipher: None,
            position: 0,
            pending: Vec::with_capacity(2 * (CHUNK + TAG)),
            image,
            name: name.to_string(),
        }
    }

    fn refused(&self, why: &str) -> Error {
        Error::ImageNotAuthentic { image: self.image, object: self.name.clone(), detail: why.to_string() }
    }

    /// Appends the plaintext of `sealed` (one chunk, tag last) to `out` once it authenticates;
    /// on failure `out` is left as it was.
    fn open(&mut self, sealed: &[u8], last: bool, out: &mut Vec<u8>) -> Result<()> {
        let cipher = self.cipher.as_ref().expect("cipher derived from the header");
        let (body, tag) = sealed.split_at(sealed.len() - TAG);
        let at = out.len();
        out.extend_from_slice(body);
        let nonce = nonce(self.position, last);
        if cipher.decrypt_in_place_detached(&nonce, b"", &mut out[at..], Tag::from_slice(tag)).is_err() {
            out.truncate(at);
            return Err(match last {
                false => self.refused("a chunk failed authentication (changed, moved or from another object)"),
                true => self.refused("its last chunk failed authentication (changed or cut off)"),
            });
        }
        self.position = self.position.checked_add(1).ok_or_else(|| self.refused("it has too many chunks"))?;
        Ok(())
    }

    /// Takes stored bytes and appends to `out` the plaintext of every chunk now known not to be
    /// the last and authenticated. Changed bytes: [`Error::ImageNotAuthentic`].
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.cipher.is_none() {
            let need = HEADER - self.pending.len();
            let take = need.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < HEADER {
                return Ok(());
            }
            if &self.pending[..MAGIC.len()] != MAGIC {
                return Err(self.refused("it does not start like an encrypted toygres object"));
            }
            let (key, image, name) = self.key.take().expect("key kept until the header");
            self.cipher = Some(object_cipher(&key, &self.pending[MAGIC.len()..HEADER], image, &name));
            self.pending.clear();
        }
        const SEALED: usize = CHUNK + TAG;
        while !data.is_empty() {
            if self.pending.len() == SEALED {
                // More follows, so the held chunk is not the last.
                let held = std::mem::take(&mut self.pending);
                self.open(&held, false, out)?;
                self.pending = held;
                self.pending.clear();
            }
            if self.pending.is_empty() && data.len() > SEALED {
                self.open(&data[..SEALED], false, out)?;
                data = &data[SEALED..];
                continue;
            }
            let take = (SEALED - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Authenticates the last chunk and appends its plaintext to `out`. A cut-off object:
    /// [`Error::ImageNotAuthentic`].
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<()> {
        if self.cipher.is_none() {
            return Err(self.refused("it ends before its header"));
        }
        let last = std::mem::take(&mut self.pending);
        if last.len() < TAG {
            return Err(self.refused("its last chunk failed authentication (changed or cut off)"));
        }
        self.open(&last, true, out)
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
