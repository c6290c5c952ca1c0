//! The archive reader against `pg_restore` itself, on a real dump.

use super::archive::{Archive, Toc};
use super::*;
use crate::cluster::LocalCluster;
use std::collections::BTreeMap;

/// Awkward rows: every escape COPY text uses, an end marker inside a value, NULLs, long values.
const DATA: &str = r#"
CREATE TABLE public.mixed (id int, txt text, raw bytea, doc jsonb, at timestamptz);
INSERT INTO public.mixed SELECT g,
  CASE g % 5 WHEN 0 THEN E'line\nbreak\ttab\\back' WHEN 1 THEN E'\\.' WHEN 2 THEN NULL
    WHEN 3 THEN repeat('é☃', 40) ELSE '' END,
  decode(md5(g::text), 'hex'), jsonb_build_object('g', g, 's', E'q"\n'), '2024-01-01'::timestamptz + g * interval '1 s'
FROM generate_series(1, 60000) g;
INSERT INTO public.mixed VALUES (0, repeat('x', 5000000), NULL, NULL, NULL);
CREATE TABLE public.empty (x int);
CREATE TABLE public."we""ird
name" (v text);
INSERT INTO public."we""ird
name" VALUES ('a'), (E'\\.');
CREATE SEQUENCE public.counter;
SELECT setval('public.counter', 42);
"#;

/// Concatenated rows per `COPY` statement.
async fn collect(mut chunks: mpsc::Receiver<CopyChunk>) -> BTreeMap<String, Vec<u8>> {
    let mut rows = BTreeMap::<String, Vec<u8>>::new();
    while let Some(chunk) = chunks.recv().await {
        assert!(chunk.rows.ends_with(b"\n"), "a chunk ends after a whole row");
        rows.entry(chunk.statement.to_string()).or_default().extend_from_slice(&chunk.rows);
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_reader_gives_the_rows_and_values_pg_restore_gives() {
    let password = Password::generate();
    let temp = LocalCluster::start_temporary(&password).await.unwrap();
    let cluster = temp.cluster();
    cluster.connect("postgres", &password).await.unwrap().batch_execute(DATA).await.unwrap();
    compare(&temp.params(), cluster.binaries(), &password).await;
    // pg_dump 18 writes archive format 1.16 (15 writes 1.14); it dumps the same server.
    match std::env::var_os("TOYGRES_PG18_BIN") {
        Some(dir) => compare(&temp.params(), &crate::PgBinaries::at(dir).unwrap(), &password).await,
        None => eprintln!("TOYGRES_PG18_BIN unset: archive format 1.16 not compared"),
    }
}

/// Dumps the `postgres` database of `params` with `bin` and compares what the archive reader
/// and `pg_restore --section=data -f -` (through [`split::split`]) make of it.
async fn compare(params: &crate::ConnParams, bin: &crate::PgBinaries, password: &Password) {
    let mut dump = params.client(bin, "pg_dump", password);
    dump.args(["--format=custom", "--compress=0", "-d", "postgres"]);
    let dump = dump.output().await.unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));

    let (mut archive, toc) = Archive::open(&dump.stdout[..], Some(dump.stdout.len() as u64)).await.unwrap();
    let Toc::Data { settings, copies, statements } = toc else { panic!("unsupported: {toc:?}") };
    assert!(settings.contains("SET client_encoding = 'UTF8';") && settings.contains("search_path"), "{settings}");
    let (tx, rx) = mpsc::channel(1000);
    let (sent, ours) = tokio::join!(send_blocks(&mut archive, &copies, tx), collect(rx));
    sent.unwrap();

    let mut restore = params.client(bin, "pg_restore", password);
    restore.args(["--section=data", "-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = restore.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = dump.stdout.clone();
    let feeding = tokio::spawn(async move { tokio::io::AsyncWriteExt::write_all(&mut stdin, &input).await });
    let (settings_tx, _settings_rx) = watch::channel(None);
    let (tx, rx) = mpsc::channel(1000);
    let (sql_tx, mut sql_rx) = mpsc::channel(1000);
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (split, theirs) = tokio::join!(split::split(stdout, settings_tx, tx, sql_tx), collect(rx));
    split.unwrap();
    feeding.await.unwrap().unwrap();
    assert!(child.wait().await.unwrap().success());
    let mut their_statements = String::new();
    while let Some(s) = sql_rx.recv().await {
        their_statements.push_str(&s);
    }

    assert_eq!(ours.len(), 2, "the empty table sends nothing: {:?}", ours.keys());
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>());
    for (statement, rows) in &ours {
        assert!(rows == &theirs[statement], "the rows of {statement} differ");
    }
    let mixed = ours.iter().find(|(s, _)| s.contains("mixed")).unwrap().1;
    assert!(mixed.len() > 3 * CHUNK, "the big table spans several chunks: {}", mixed.len());
    assert_eq!(statements, vec!["SELECT pg_catalog.setval('public.counter', 42, true);\n".to_string()]);
    assert!(their_statements.contains(&statements[0]), "{their_statements}");
}

#[tokio::test]
async fn archives_it_cannot_read_are_told_apart_from_corrupt_ones() {
    let err = Archive::open(&b"PGDMX\x01\x0e\x00"[..], None).await.err().unwrap().to_string();
    assert!(err.contains("no PGDMP header"), "{err}");
    let (_, toc) = Archive::open(&b"PGDMP\x01\x11\x00"[..], None).await.unwrap();
    assert_eq!(toc, Toc::Unsupported("archive format 1.17 is not read here".into()));
    let err = Archive::open(&b"PGDMP\x01\x0e\x00\x04\x08\x01"[..], None).await.err().unwrap().to_string();
    assert!(err.contains("ends early"), "{err}");
}

/// An integer as the archive writes it with 8-byte integers: a sign byte, then little-endian.
fn int8(value: i64) -> Vec<u8> {
    let mut out = vec![u8::from(value < 0)];
    out.extend_from_slice(&value.unsigned_abs().to_le_bytes());
    out
}

/// A version-1.14 header with 8-byte integers, no strings and an empty table of contents,
/// followed by `tail`.
fn crafted(tail: &[u8]) -> Vec<u8> {
    let mut bytes = b"PGDMP\x01\x0e\x00\x08\x08\x01".to_vec();
    bytes.extend(int8(0)); // no compression
    (0..7).for_each(|_| bytes.extend(int8(0))); // creation time
    (0..3).for_each(|_| bytes.extend(int8(-1))); // no database name, versions
    bytes.extend(int8(0)); // no entries
    bytes.extend_from_slice(tail);
    bytes
}

/// Lengths come from the image: a data piece or a string of 2^40 bytes is a typed `Corrupt`
/// error, with or without the archive's size, and nothing that large is ever allocated.
#[tokio::test]
async fn lengths_longer_than_the_archive_are_corrupt_not_allocated() {
    let huge = 1i64 << 40;
    let mut block = vec![1u8]; // a data block
    block.extend(int8(7));
    block.extend(int8(huge));
    block.extend_from_slice(b"a few real bytes");
    let archive = crafted(&block);
    for size in [Some(archive.len() as u64), None] {
        let (mut reader, toc) = Archive::open(&archive[..], size).await.unwrap();
        assert_eq!(toc, Toc::Unsupported("the archive names no encoding".into()));
        assert_eq!(reader.next_block().await.unwrap(), Some(7));
        let mut out = Vec::new();
        let err = reader.read_data(&mut out, CHUNK).await.unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{size:?}: {err:?}");
        assert!(out.capacity() < 1 << 20, "{size:?}: {} bytes reserved", out.capacity());
    }
    let mut header = b"PGDMP\x01\x0e\x00\x08\x08\x01".to_vec();
    header.extend(int8(0));
    (0..7).for_each(|_| header.extend(int8(0)));
    header.extend(int8(huge)); // the database name's length
    for size in [Some(header.len() as u64), None] {
        let err = Archive::open(&header[..], size).await.err().unwrap();
        assert!(matches!(err, Error::Corrupt(_)), "{size:?}: {err:?}");
    }
}
