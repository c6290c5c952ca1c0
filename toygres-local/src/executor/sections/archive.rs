//! Reading the data of a `pg_dump -Fc` archive (the custom format) directly: its header, its
//! table of contents and the `COPY` rows of its data blocks, which is all a data load needs,
//! without a `pg_restore` process between the dump and the loading connections (it cost about
//! an eighth of both cores while a large table loaded).
//!
//! Read: uncompressed archives (toygres dumps with `--compress=0` and compresses the whole
//! stream) of format versions 1.14 to 1.16 (pg_dump 12 to 18) whose data section holds table
//! data and sequence values only. Anything else (large objects, compressed or newer archives)
//! is [`Toc::Unsupported`] and loads through `pg_restore` instead.

use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use toygres_core::{Error, Result};

const BACKEND: &str = "local executor";
const MAGIC: &[u8; 5] = b"PGDMP";
const FORMAT_CUSTOM: u8 = 1;
/// The custom format's data block of a table (`BLK_DATA`).
const BLOCK_DATA: u8 = 1;
const SECTION_NONE: i64 = 1;
const SECTION_PRE_DATA: i64 = 2;
const SECTION_DATA: i64 = 3;

const fn version(major: u32, minor: u32) -> u32 {
    (major << 16) | (minor << 8)
}
const OLDEST: u32 = version(1, 14);
const NEWEST: u32 = version(1, 16);
/// The header names its compression algorithm instead of a zlib level.
const V_ALGORITHM: u32 = version(1, 15);
/// Entries carry their relation kind; `WITH OIDS` flags are gone.
const V_RELKIND: u32 = version(1, 16);

/// What the table of contents says about the data section.
#[derive(Debug, PartialEq)]
pub(crate) enum Toc {
    /// The archive can be read here.
    Data {
        /// `SET` statements every loading connection runs first (encoding, string syntax,
        /// search path of the dump).
        settings: String,
        /// The `COPY … FROM stdin;` statement of each table data entry, by dump id.
        copies: HashMap<i64, Arc<str>>,
        /// Sequence values, in order.
        statements: Vec<String>,
    },
    /// Why it cannot be (`pg_restore` loads it instead).
    Unsupported(String),
}

/// Settings run on every loading connection besides the archive's own (as `pg_restore` does).
const FIXED_SETTINGS: &str = "SET statement_timeout = 0;\nSET lock_timeout = 0;\n\
    SET idle_in_transaction_session_timeout = 0;\nSET check_function_bodies = false;\n\
    SET xmloption = content;\nSET client_min_messages = warning;\nSET row_security = off;\n";

/// A custom-format archive read front to back through its own buffer (the data arrives in one
/// small piece per row: reading them one by one from an async reader cost more than the rows).
///
/// Every length comes from the image, so none is trusted: a length longer than what is left of
/// the archive is [`Error::Corrupt`], and memory grows only with bytes really read.
pub(crate) struct Archive<R> {
    input: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// The archive's length when known (the manifest's `raw_size`), and the bytes taken so far.
    size: Option<u64>,
    taken: u64,
    int_size: usize,
    off_size: usize,
    version: u32,
}

/// The longest string an entry may hold even when the archive's size is unknown.
const MAX_STRING: usize = 1 << 30;

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("the dump is not a readable pg_dump archive: {what}"))
}

impl<R: AsyncRead + Unpin> Archive<R> {
    /// Reads the header and the table of contents of an archive of `size` bytes (`None`:
    /// unknown).
    pub(crate) async fn open(input: R, size: Option<u64>) -> Result<(Self, Toc)> {
        let buf = vec![0u8; 1 << 20].into_boxed_slice();
        let mut archive = Self { input, buf, pos: 0, end: 0, size, taken: 0, int_size: 4, off_size: 8, version: 0 };
        let head: [u8; 8] = archive.bytes(8).await?.try_into().expect("8 bytes");
        if &head[..5] != MAGIC {
            return Err(corrupt("no PGDMP header"));
        }
        archive.version = version(head[5].into(), head[6].into()) | u32::from(head[7]);
        if !(OLDEST..=NEWEST | 0xff).contains(&archive.version) {
            let why = format!("archive format {}.{} is not read here", head[5], head[6]);
            return Ok((archive, Toc::Unsupported(why)));
        }
        archive.int_size = archive.byte().await?.into();
        archive.off_size = archive.byte().await?.into();
        if !(1..=8).contains(&archive.int_size) || !(1..=8).contains(&archive.off_size) {
            return Err(corrupt("integer sizes out of range"));
        }
        if archive.byte().await? != FORMAT_CUSTOM {
            return Ok((archive, Toc::Unsupported("not the custom format".into())));
        }
        let compressed = match archive.version >= V_ALGORITHM {
            true => archive.byte().await? != 0,
            false => archive.int().await? != 0,
        };
        if compressed {
            return Ok((archive, Toc::Unsupported("the archive compresses its data itself".into())));
        }
        for _ in 0..7 {
            archive.int().await?; // creation time
        }
        for _ in 0..3 {
            archive.string().await?; // database name, server and pg_dump versions
        }
        let toc = archive.toc().await?;
        Ok((archive, toc))
    }

    async fn toc(&mut self) -> Result<Toc> {
        let count = self.int().await?;
        let (mut settings, mut copies, mut statements) = (String::new(), HashMap::new(), Vec::new());
        let mut current = SECTION_PRE_DATA;
        for _ in 0..count {
            let entry = self.entry().await?;
            if entry.section != SECTION_NONE {
                current = entry.section;
            }
            match entry.desc.as_str() {
                "ENCODING" | "STDSTRINGS" | "SEARCHPATH" => settings.push_str(&entry.defn),
                "TABLE DATA" if current == SECTION_DATA => {
                    let Some(copy) = entry.copy.filter(|c| c.starts_with("COPY ")) else {
                        return Ok(Toc::Unsupported(format!("table data {:?} has no COPY statement", entry.tag)));
                    };
                    copies.insert(entry.id, Arc::from(copy.trim_end()));
                }
                "SEQUENCE SET" if current == SECTION_DATA => statements.push(entry.defn),
                desc if current == SECTION_DATA => {
                    return Ok(Toc::Unsupported(format!("the data section holds {desc} {:?}", entry.tag)));
                }
                _ => {}
            }
        }
        if !settings.contains("client_encoding") {
            return Ok(Toc::Unsupported("the archive names no encoding".into()));
        }
        settings.push_str(FIXED_SETTINGS);
        Ok(Toc::Data { settings, copies, statements })
    }

    /// One entry of the table of contents (the fields a data load needs; the rest is skipped).
    async fn entry(&mut self) -> Result<Entry> {
        let id = self.int().await?;
        self.int().await?; // had a data dumper
        self.string().await?; // table oid
        self.string().await?; // oid
        let tag = self.string().await?.unwrap_or_default();
        let desc = self.string().await?.unwrap_or_default();
        let section = self.int().await?;
        let defn = self.string().await?.unwrap_or_default();
        self.string().await?; // drop statement
        let copy = self.string().await?;
        for _ in 0..3 {
            self.string().await?; // namespace, tablespace, table access method
        }
        if self.version >= V_RELKIND {
            self.int().await?;
        }
        self.string().await?; // owner
        self.string().await?; // WITH OIDS ("false")
        while self.string().await?.is_some() {} // dependencies
        self.bytes(1 + self.off_size).await?; // data offset: its state, then the offset
        Ok(Entry { id, tag, desc, section, defn, copy })
    }

    /// The next data block: its dump id, `None` at the end of the archive.
    pub(crate) async fn next_block(&mut self) -> Result<Option<i64>> {
        if !self.fill(1).await? {
            return Ok(None);
        }
        match self.byte().await? {
            BLOCK_DATA => Ok(Some(self.int().await?)),
            other => Err(corrupt(&format!("unexpected block type {other}"))),
        }
    }

    /// Appends the current block's data to `out` until it holds `limit` bytes or the block
    /// ends; `false` once it has ended.
    pub(crate) async fn read_data(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<bool> {
        while out.len() < limit {
            let len = usize::try_from(self.int().await?).map_err(|_| corrupt("negative data length"))?;
            if len == 0 {
                return Ok(false);
            }
            self.check_len(len, "a data piece")?;
            let mut left = len;
            while left > 0 {
                let n = left.min(self.buf.len());
                out.extend_from_slice(self.bytes(n).await?);
                left -= n;
            }
        }
        Ok(true)
    }

    /// [`Error::Corrupt`] when `len` is longer than what is left of the archive (when its size
    /// is known).
    fn check_len(&self, len: usize, what: &str) -> Result<()> {
        let Some(size) = self.size else { return Ok(()) };
        let left = size.saturating_sub(self.taken) + (self.end - self.pos) as u64;
        if len as u64 > left {
            return Err(corrupt(&format!("{what} of {len} bytes, with {left} bytes left in the archive")));
        }
        Ok(())
    }

    /// Makes at least `n` bytes available in the buffer (`n` ≤ its size); `false` if the
    /// archive ended cleanly with none left.
    async fn fill(&mut self, n: usize) -> Result<bool> {
        if self.end - self.pos >= n {
            return Ok(true);
        }
        self.buf.copy_within(self.pos..self.end, 0);
        (self.end, self.pos) = (self.end - self.pos, 0);
        while self.end < n {
            let got = self.input.read(&mut self.buf[self.end..]).await;
            match got.map_err(|e| Error::backend(BACKEND, "reading the dump", e))? {
                0 if self.end == 0 => return Ok(false),
                0 => return Err(corrupt("it ends early")),
                got => {
                    self.end += got;
                    self.taken += got as u64;
                }
            }
        }
        Ok(true)
    }

    /// The next `n` bytes (`n` ≤ the buffer's size).
    async fn bytes(&mut self, n: usize) -> Result<&[u8]> {
        if !self.fill(n).await? {
            return Err(corrupt("it ends early"));
        }
        self.pos += n;
        Ok(&self.buf[self.pos - n..self.pos])
    }

    async fn byte(&mut self) -> Result<u8> {
        Ok(self.bytes(1).await?[0])
    }

    /// An integer: a sign byte, then `int_size` bytes, least significant first.
    async fn int(&mut self) -> Result<i64> {
        let size = self.int_size;
        let raw = self.bytes(1 + size).await?;
        let value = raw[1..].iter().rev().fold(0i64, |v, b| (v << 8) | i64::from(*b));
        Ok(if raw[0] != 0 { -value } else { value })
    }

    /// A string: its length (negative: none), then its bytes.
    async fn string(&mut self) -> Result<Option<String>> {
        let Ok(len) = usize::try_from(self.int().await?) else { return Ok(None) };
        if len > MAX_STRING {
            return Err(corrupt("a string longer than 1 GiB"));
        }
        self.check_len(len, "a string")?;
        let mut bytes = Vec::with_capacity(len.min(self.buf.len()));
        while bytes.len() < len {
            let n = (len - bytes.len()).min(self.buf.len());
            bytes.extend_from_slice(self.bytes(n).await?);
        }
        String::from_utf8(bytes).map(Some).map_err(|_| corrupt("a string that is not UTF-8"))
    }
}

struct Entry {
    id: i64,
    tag: String,
    desc: String,
    section: i64,
    defn: String,
    copy: Option<String>,
}
