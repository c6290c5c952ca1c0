//! Streaming zstd compression into an [`ObjectSink`] and decompression out of a [`Source`], with
//! the sha256 and size of the stored (compressed, sealed) bytes computed in the same pass.

use super::joblog::Progress;
use super::jobs::JobCtx;
use super::stored::{check, ObjectSink, Opening, Sealing, Stored};
use super::transfer::Source;
use bytes::Bytes;
use std::io::Write;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use toygres_core::manifest::ManifestObject;
use toygres_core::{Error, ImageId, Result};

const BACKEND: &str = "local executor";
/// Read size from a dump process.
const CHUNK: usize = 1 << 20;

fn zstd_err(what: &str, e: std::io::Error) -> Error {
    Error::backend(BACKEND, format!("zstd {what}"), e)
}

/// zstd settings of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// zstd level (1 = fastest). Default 1: measured here on pgbench scale 30 (2 cores, shared),
    /// `pg_dump -Z0 | zstd -T2` took 1.9 s at level 1 and 1.7-2.3 s at level 3 (raw `pg_dump -Fc`:
    /// 2.3-3.3 s); level 3 stores about 25% less. Speed wins for an image taken on a live server.
    pub level: i32,
    /// zstd worker threads per stream (0 = compress on the calling thread).
    pub workers: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Self { level: 1, workers: 2 }
    }
}

/// Compresses everything `input` yields into `sink` (left open: the caller finishes or aborts it
/// after checking the producer's exit status). Returns how many bytes `input` yielded, which
/// progress counts too (what the dump program wrote).
pub(crate) async fn compress_into<R: AsyncRead + Unpin>(
    mut input: R,
    sink: &mut ObjectSink,
    compression: Compression,
    progress: &Progress,
) -> Result<u64> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::with_capacity(CHUNK), compression.level)
        .map_err(|e| zstd_err("init", e))?;
    if compression.workers > 0 {
        enc.multithread(compression.workers).map_err(|e| zstd_err("workers", e))?;
    }
    let mut raw = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = input.read(&mut buf).await.map_err(|e| Error::backend(BACKEND, "reading the dump output", e))?;
        if n == 0 {
            break;
        }
        raw += n as u64;
        progress.add(n as u64);
        enc.write_all(&buf[..n]).map_err(|e| zstd_err("compress", e))?;
        let out = std::mem::take(enc.get_mut());
        if !out.is_empty() {
            sink.write(&out).await?;
        }
    }
    let out = enc.finish().map_err(|e| zstd_err("finish", e))?;
    sink.write(&out).await?;
    Ok(raw)
}

/// Stores everything `input` yields (already zstd-compressed, e.g. by the server) into `sink` as is,
/// left open like [`compress_into`].
pub(crate) async fn store_into<R: AsyncRead + Unpin>(mut input: R, sink: &mut ObjectSink) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = input.read(&mut buf).await.map_err(|e| Error::backend(BACKEND, "reading the dump output", e))?;
        if n == 0 {
            return Ok(());
        }
        sink.write(&buf[..n]).await?;
    }
}

/// Object `expected` of `image` read from `source`, counting and hashing what is stored as it
/// goes and, for an encrypted image, handing on only authenticated plaintext;
/// [`Checked::finish`] checks size and sha256 once it has ended.
pub(crate) struct Checked<'a> {
    source: Source,
    stored: Stored,
    opening: Opening,
    ended: bool,
    image: ImageId,
    expected: &'a ManifestObject,
    progress: Option<&'a Progress>,
}

impl<'a> Checked<'a> {
    /// Reads `expected` from `source` as stored; `progress` (if any) counts the stored bytes read.
    pub(crate) fn new(
        source: Source,
        image: ImageId,
        expected: &'a ManifestObject,
        progress: Option<&'a Progress>,
    ) -> Self {
        let opening = Opening::new(None, &expected.name);
        Self { source, stored: Stored::new(), opening, ended: false, image, expected, progress }
    }

    /// Hands on the object's plaintext, opened under `sealing` (`None`: stored bytes as they are).
    /// Opened bytes are authenticated chunk by chunk, so they are counted but not hashed again.
    pub(crate) fn opened(mut self, sealing: Option<&Sealing>) -> Self {
        self.opening = Opening::new(sealing, &self.expected.name);
        if sealing.is_some() {
            self.stored = Stored::counting();
        }
        self
    }

    /// The next chunk (authenticated plaintext when opened), `None` at the end. An encrypted
    /// object whose chunks fail authentication is [`Error::ImageNotAuthentic`].
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>> {
        loop {
            let Some(chunk) = self.source.next().await? else {
                if std::mem::replace(&mut self.ended, true) {
                    return Ok(None);
                }
                let last = self.opening.finish()?;
                return Ok((!last.is_empty()).then_some(last));
            };
            self.stored.add(&chunk);
            if let Some(progress) = self.progress {
                progress.add(chunk.len() as u64);
            }
            let plain = self.opening.push(chunk)?;
            if !plain.is_empty() {
                return Ok(Some(plain));
            }
        }
    }

    /// Checks that the source ended cleanly with the manifest's size and sha256. A mismatch is
    /// [`Error::ChecksumMismatch`] (the caller must discard whatever it did with the bytes).
    pub(crate) async fn finish(self) -> Result<()> {
        self.source.finish().await?;
        check(self.image, self.expected, self.stored)
    }
}

/// Decompresses object `expected` from `source` into `output` (opened under the job's key when the
/// image is encrypted), checking its size and sha256 when it ends. A mismatch is
/// [`Error::ChecksumMismatch`] (the caller must discard what was loaded).
pub(crate) async fn decompress_into<W: AsyncWrite + Unpin>(
    source: Source,
    output: &mut W,
    image: ImageId,
    expected: &ManifestObject,
    ctx: &JobCtx,
) -> Result<()> {
    let mut inflate = Inflate::new()?;
    let mut checked = Checked::new(source, image, expected, Some(&ctx.progress)).opened(ctx.sealing.as_ref());
    while let Some(chunk) = checked.next().await? {
        inflate.write(&chunk, output).await.map_err(|e| e.into_error(&expected.name))?;
    }
    inflate.finish(output).await.map_err(|e| e.into_error(&expected.name))?;
    checked.finish().await
}

/// Decompresses object `expected` from `source` into `output` until `output` is closed: for a
/// consumer that needs only the head of a dump (`pg_restore --section=pre-data` reads the table
/// of contents and exits). Nothing is checked: the object was verified earlier in the same job.
pub(crate) async fn decompress_head_into<W: AsyncWrite + Unpin>(
    mut source: Source,
    output: &mut W,
    expected: &ManifestObject,
    sealing: Option<&Sealing>,
) -> Result<()> {
    let mut inflate = Inflate::new()?;
    let mut opening = Opening::new(sealing, &expected.name);
    let mut fed = Ok(());
    while let Some(chunk) = source.next().await? {
        fed = inflate.write(&opening.push(chunk)?, output).await;
        if fed.is_err() {
            break;
        }
    }
    if fed.is_ok() {
        fed = inflate.write(&opening.finish()?, output).await;
    }
    if fed.is_ok() {
        fed = inflate.finish(output).await;
    }
    match fed {
        Err(Inflated::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        fed => fed.map_err(|e| e.into_error(&expected.name)),
    }
}

/// Output of zstd decompression in pieces of [`CHUNK`] bytes: one stored chunk of a dump that
/// compresses well holds a hundred times as much (pgbench: 2 MiB held 170 MB), which a single
/// buffer would allocate and fault in at once.
struct Inflate {
    dec: zstd::stream::raw::Decoder<'static>,
    buf: Vec<u8>,
}

/// Which side of [`Inflate`] failed.
enum Inflated {
    Zstd(std::io::Error),
    Output(std::io::Error),
}

impl Inflated {
    fn into_error(self, object: &str) -> Error {
        match self {
            Inflated::Zstd(e) => zstd_err(&format!("decompressing {object}"), e),
            Inflated::Output(e) => Error::backend(BACKEND, format!("feeding {object} to its consumer"), e),
        }
    }
}

impl Inflate {
    fn new() -> Result<Self> {
        let dec = zstd::stream::raw::Decoder::new().map_err(|e| zstd_err("init", e))?;
        Ok(Self { dec, buf: vec![0; CHUNK] })
    }

    /// Decompresses `input` into `output`.
    async fn write<W: AsyncWrite + Unpin>(&mut self, input: &[u8], output: &mut W) -> Result<(), Inflated> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut input = InBuffer::around(input);
        loop {
            let mut out = OutBuffer::around(&mut self.buf[..]);
            self.dec.run(&mut input, &mut out).map_err(Inflated::Zstd)?;
            let (produced, full) = (out.pos(), out.pos() == CHUNK);
            output.write_all(&self.buf[..produced]).await.map_err(Inflated::Output)?;
            // A full buffer may leave output behind even once the input is consumed.
            if input.pos() == input.src.len() && !full {
                return Ok(());
            }
        }
    }

    /// Writes what the decoder still holds.
    async fn finish<W: AsyncWrite + Unpin>(&mut self, output: &mut W) -> Result<(), Inflated> {
        self.write(&[], output).await
    }
}
