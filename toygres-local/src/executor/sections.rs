//! Loading one large database over several connections.
//!
//! `pg_restore` loads a database through one connection, so a single server backend parses every
//! row of the largest table while the other cores wait. For a large database the restore runs
//! the dump's three sections instead, each entry of the dump in exactly one of them:
//!
//! 1. the schema (`pg_restore --section=pre-data`), in one transaction;
//! 2. the data: `pg_restore --section=data -f -` writes it as SQL; its `COPY` blocks are cut at
//!    row boundaries into chunks that [`COPY_CONNECTIONS`] connections load at the same time,
//!    and everything else (sequence values, large objects) runs in order on one more connection;
//! 3. indexes, constraints and the rest (`--section=post-data`), in one transaction.
//!
//! The data is WAL-logged this way (a table created in the loading transaction is not, with
//! the load-only `wal_level=minimal`), which the second core more than pays for on large tables.

use super::codec::{decompress_head_into, decompress_into};
use super::jobs::JobCtx;
use super::restore::feed;
use super::transfer::Source;
use crate::cluster::LocalCluster;
use bytes::Bytes;
use futures::SinkExt;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, Mutex};
use toygres_core::manifest::ManifestDatabase;
use toygres_core::{Error, ImageId, Password, Result, Transfer};

const BACKEND: &str = "local executor";
/// Connections loading `COPY` chunks of one database at the same time.
pub(crate) const COPY_CONNECTIONS: usize = 2;
/// Rows are handed to the connections in chunks of about this many bytes.
const CHUNK: usize = 4 << 20;

/// Where one database's dump comes from.
pub(crate) struct Dump<'a> {
    pub(crate) transfer: &'a Transfer,
    pub(crate) image: ImageId,
    pub(crate) db: &'a ManifestDatabase,
}

impl Dump<'_> {
    async fn open(&self, ctx: &JobCtx) -> Result<Source> {
        Source::open(self.transfer, self.image, &self.db.object.name, &ctx.log).await
    }
}

/// Loads `dump` into its (existing, empty) database section by section.
pub(crate) async fn load(cluster: &LocalCluster, password: &Password, dump: Dump<'_>, ctx: &JobCtx) -> Result<()> {
    let started = std::time::Instant::now();
    restore_section(cluster, password, &dump, "pre-data", ctx).await?;
    let schema = started.elapsed();
    load_data(cluster, password, &dump, ctx).await?;
    let data = started.elapsed() - schema;
    restore_section(cluster, password, &dump, "post-data", ctx).await?;
    let (post, name) = (started.elapsed() - schema - data, &dump.db.name);
    let secs = |d: std::time::Duration| d.as_secs_f64();
    ctx.log.line(&format!(
        "database {name:?} loaded: schema {:.2} s, data {:.2} s, indexes and constraints {:.2} s",
        secs(schema),
        secs(data),
        secs(post)
    ));
    Ok(())
}

/// `pg_restore --section=<section>` into the database, in one transaction. `pg_restore` reads
/// only the dump's table of contents for these sections and closes its input early.
async fn restore_section(
    cluster: &LocalCluster,
    password: &Password,
    dump: &Dump<'_>,
    section: &str,
    ctx: &JobCtx,
) -> Result<()> {
    let mut restore = cluster.client("pg_restore", password);
    restore.args(["--exit-on-error", "--single-transaction", "--no-password", "--section", section]);
    restore.args(["-d", &conninfo_dbname(&dump.db.name)]);
    let source = dump.open(ctx).await?;
    let what = format!("pg_restore --section={section} of {:?}", dump.db.name);
    let object = &dump.db.object;
    feed(restore, &what, ctx, |mut stdin| async move { decompress_head_into(source, &mut stdin, object).await }).await
}

/// `dbname='…'` for a libpq connection string.
pub(crate) fn conninfo_dbname(name: &str) -> String {
    format!("dbname='{}'", name.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The data section: `pg_restore -f -` fed with the dump, its SQL split by [`split`], and the
/// pieces run by the loading connections.
async fn load_data(cluster: &LocalCluster, password: &Password, dump: &Dump<'_>, ctx: &JobCtx) -> Result<()> {
    let what = format!("pg_restore --section=data of {:?}", dump.db.name);
    let mut cmd = cluster.client("pg_restore", password);
    cmd.args(["--section=data", "-f", "-"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| Error::backend(BACKEND, format!("{what}: cannot start it"), e))?;
    let captured = child.stderr.take().map(|e| ctx.log.capture(e, &what));
    let (mut stdin, stdout) = (child.stdin.take().expect("piped stdin"), child.stdout.take().expect("piped stdout"));
    let source = dump.open(ctx).await?;
    let object = &dump.db.object;
    let fed = async move {
        let fed = decompress_into(source, &mut stdin, dump.image, object, &ctx.progress).await;
        drop(stdin);
        fed
    };
    let (copies_tx, copies_rx) = mpsc::channel(2 * COPY_CONNECTIONS);
    let (sql_tx, sql_rx) = mpsc::channel(2);
    let (preamble_tx, preamble_rx) = tokio::sync::watch::channel(None::<Arc<String>>);
    let split = split(BufReader::with_capacity(1 << 20, stdout), preamble_tx, copies_tx, sql_tx);
    let copies_rx = Arc::new(Mutex::new(copies_rx));
    let workers = futures::future::try_join_all((0..COPY_CONNECTIONS).map(|_| {
        let (rx, preamble) = (copies_rx.clone(), preamble_rx.clone());
        async move { copy_worker(connect(cluster, password, dump, preamble).await?, rx).await }
    }));
    let statements = async { sql_worker(connect(cluster, password, dump, preamble_rx.clone()).await?, sql_rx).await };
    let loaded = tokio::try_join!(fed, split, workers, statements).map(|_| ());
    if loaded.is_err() {
        let _ = child.start_kill();
    }
    let status = child.wait().await.map_err(|e| Error::backend(BACKEND, format!("{what}: waiting"), e))?;
    if let Some(c) = captured {
        c.done().await;
    }
    // pg_restore's own failure explains the others (a closed pipe, missing settings), except
    // a checksum mismatch, which explains pg_restore's.
    match (loaded, status.success()) {
        (Err(e @ Error::ChecksumMismatch { .. }), _) | (Err(e), true) => Err(e),
        (_, false) => Err(Error::backend_msg(BACKEND, format!("{what} failed ({status}); see the job log"))),
        (Ok(()), true) => Ok(()),
    }
}

/// A connection to the database with the dump's session settings applied.
async fn connect(
    cluster: &LocalCluster,
    password: &Password,
    dump: &Dump<'_>,
    mut preamble: tokio::sync::watch::Receiver<Option<Arc<String>>>,
) -> Result<tokio_postgres::Client> {
    let client = cluster.connect(&dump.db.name, password).await?;
    let settings = match preamble.wait_for(Option::is_some).await {
        Ok(settings) => settings.clone().expect("waited for it"),
        // The splitter failed before it read the settings; its error is the one reported.
        Err(_) => return Err(Error::backend_msg(BACKEND, "the data section ended before its settings")),
    };
    client.batch_execute(&settings).await.map_err(|e| db_err("applying the dump's session settings", e))?;
    Ok(client)
}

/// Rows of one `COPY` block: whole lines in COPY text format, without the `\.` terminator.
struct CopyChunk {
    statement: Arc<str>,
    rows: Bytes,
}

/// Loads chunks until the splitter is done.
async fn copy_worker(client: tokio_postgres::Client, chunks: Arc<Mutex<mpsc::Receiver<CopyChunk>>>) -> Result<()> {
    loop {
        let Some(chunk) = chunks.lock().await.recv().await else { return Ok(()) };
        let what = || format!("loading rows ({})", chunk.statement.trim_end_matches(';'));
        let sink = client.copy_in::<_, Bytes>(&*chunk.statement).await.map_err(|e| db_err(&what(), e))?;
        futures::pin_mut!(sink);
        sink.send(chunk.rows).await.map_err(|e| db_err(&what(), e))?;
        sink.finish().await.map_err(|e| db_err(&what(), e))?;
    }
}

/// Runs the data section's other statements, in order.
async fn sql_worker(client: tokio_postgres::Client, mut statements: mpsc::Receiver<String>) -> Result<()> {
    while let Some(sql) = statements.recv().await {
        client.batch_execute(&sql).await.map_err(|e| db_err("running the data section's statements", e))?;
    }
    Ok(())
}

fn db_err(what: &str, e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => Error::backend_msg(BACKEND, format!("{what}: {}: {}", db.code().code(), db.message())),
        None => Error::backend(BACKEND, what.to_string(), e),
    }
}

/// Splits `pg_restore -f -` output: the session settings before the first entry go to every
/// connection (`preamble`), `COPY` blocks are cut into [`CHUNK`]-sized row chunks (`copies`),
/// the other statements go to `statements` in order. psql meta-commands (`\restrict`) are
/// dropped: nothing here runs psql.
async fn split<R: AsyncBufRead + Unpin>(
    mut out: R,
    preamble: tokio::sync::watch::Sender<Option<Arc<String>>>,
    copies: mpsc::Sender<CopyChunk>,
    statements: mpsc::Sender<String>,
) -> Result<()> {
    let closed = || Error::backend_msg(BACKEND, "the loading connections stopped early");
    let mut settings = Some(String::new());
    let mut sql = String::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(&mut out, &mut line).await? == 0 {
            break;
        }
        if line.starts_with(b"COPY ") {
            let statement = copy_statement(&mut out, &mut line).await?;
            if let Some(s) = settings.take() {
                preamble.send_replace(Some(Arc::new(s)));
            }
            if has_statement(&sql) {
                statements.send(std::mem::take(&mut sql)).await.map_err(|_| closed())?;
            }
            sql.clear();
            copy_rows(&mut out, statement, &copies).await?;
            continue;
        }
        if line.starts_with(b"\\") {
            continue;
        }
        let text = std::str::from_utf8(&line)
            .map_err(|_| Error::backend_msg(BACKEND, "the data section has a statement that is not UTF-8"))?;
        match settings.as_mut() {
            // The settings end where the first entry's header comment begins.
            Some(s) if !is_entry_header(text) => s.push_str(text),
            _ => {
                if let Some(s) = settings.take() {
                    preamble.send_replace(Some(Arc::new(s)));
                }
                sql.push_str(text);
                if sql.len() >= CHUNK && text.ends_with(";\n") {
                    statements.send(std::mem::take(&mut sql)).await.map_err(|_| closed())?;
                }
            }
        }
    }
    if let Some(s) = settings.take() {
        preamble.send_replace(Some(Arc::new(s)));
    }
    if has_statement(&sql) {
        statements.send(sql).await.map_err(|_| closed())?;
    }
    Ok(())
}

/// Whether `sql` holds more than comments and blank lines.
fn has_statement(sql: &str) -> bool {
    sql.lines().any(|l| !l.trim().is_empty() && !l.starts_with("--"))
}

/// Whether `line` is the comment naming a dump entry (`-- Data for Name: …; Type: …`).
fn is_entry_header(line: &str) -> bool {
    (line.starts_with("-- Data for Name: ") || line.starts_with("-- Name: ")) && line.contains("; Type: ")
}

/// Reads one line (with its `\n`) into `line`; 0 at the end.
async fn read_line<R: AsyncBufRead + Unpin>(out: &mut R, line: &mut Vec<u8>) -> Result<usize> {
    out.read_until(b'\n', line).await.map_err(|e| Error::backend(BACKEND, "reading pg_restore's output", e))
}

/// The whole `COPY … FROM stdin;` statement starting with `line` (a quoted name may hold a
/// newline, so it may span lines).
async fn copy_statement<R: AsyncBufRead + Unpin>(out: &mut R, line: &mut Vec<u8>) -> Result<Arc<str>> {
    while !line.ends_with(b" FROM stdin;\n") {
        if read_line(out, line).await? == 0 {
            return Err(Error::backend_msg(BACKEND, "pg_restore's output ended inside a COPY statement"));
        }
    }
    let text = std::str::from_utf8(line)
        .map_err(|_| Error::backend_msg(BACKEND, "the data section has a COPY statement that is not UTF-8"))?;
    Ok(Arc::from(text.trim_end()))
}

/// Reads the rows of a `COPY` block up to its `\.` line, sending them in chunks.
async fn copy_rows<R: AsyncBufRead + Unpin>(
    out: &mut R,
    statement: Arc<str>,
    copies: &mpsc::Sender<CopyChunk>,
) -> Result<()> {
    let stopped = || Error::backend_msg(BACKEND, "the loading connections stopped early");
    let capacity = CHUNK + (64 << 10);
    let mut rows = Vec::with_capacity(capacity);
    loop {
        let start = rows.len();
        if read_line(out, &mut rows).await? == 0 {
            return Err(Error::backend_msg(BACKEND, "pg_restore's output ended inside a COPY block"));
        }
        if &rows[start..] == b"\\.\n" {
            rows.truncate(start);
            break;
        }
        if rows.len() >= CHUNK {
            let full = std::mem::replace(&mut rows, Vec::with_capacity(capacity));
            copies
                .send(CopyChunk { statement: statement.clone(), rows: Bytes::from(full) })
                .await
                .map_err(|_| stopped())?;
        }
    }
    if !rows.is_empty() {
        copies.send(CopyChunk { statement, rows: Bytes::from(rows) }).await.map_err(|_| stopped())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`split`] made of `output`: (settings, copy chunks as (statement, rows), statements).
    async fn run(output: &[u8]) -> Result<(String, Vec<(String, Vec<u8>)>, Vec<String>)> {
        let (preamble_tx, mut preamble_rx) = tokio::sync::watch::channel(None);
        let (copies_tx, mut copies_rx) = mpsc::channel(1000);
        let (sql_tx, mut sql_rx) = mpsc::channel(1000);
        split(output, preamble_tx, copies_tx, sql_tx).await?;
        let settings = preamble_rx.wait_for(Option::is_some).await.unwrap().clone().unwrap().to_string();
        let mut copies = Vec::new();
        while let Some(c) = copies_rx.recv().await {
            copies.push((c.statement.to_string(), c.rows.to_vec()));
        }
        let mut statements = Vec::new();
        while let Some(s) = sql_rx.recv().await {
            statements.push(s);
        }
        Ok((settings, copies, statements))
    }

    const HEAD: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET client_encoding = 'UTF8';\n\
        SELECT pg_catalog.set_config('search_path', '', false);\n\n";

    #[tokio::test]
    async fn settings_copies_and_statements_are_told_apart() {
        let output = format!(
            "{HEAD}--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: o\n--\n\n\
             COPY public.t (a, b) FROM stdin;\n1\tx\n2\t\\\\.\n\\.\n\n\n\
             --\n-- Name: s; Type: SEQUENCE SET; Schema: public; Owner: o\n--\n\n\
             SELECT pg_catalog.setval('public.s', 7, true);\n\n\
             --\n-- Data for Name: e; Type: TABLE DATA; Schema: public; Owner: o\n--\n\n\
             COPY public.e (a) FROM stdin;\n\\.\n\n\
             --\n-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -\n--\n\n\
             BEGIN;\nSELECT pg_catalog.lo_open('1', 131072);\nCOMMIT;\n\n\\unrestrict abc\n"
        );
        let (settings, copies, statements) = run(output.as_bytes()).await.unwrap();
        assert!(settings.contains("SET client_encoding = 'UTF8';\n") && settings.contains("set_config"), "{settings}");
        assert!(!settings.contains("restrict") && !settings.contains("Data for Name"), "{settings}");
        // A row holding a backslash-dot is data; the empty table sends nothing.
        assert_eq!(copies, vec![("COPY public.t (a, b) FROM stdin;".to_string(), b"1\tx\n2\t\\\\.\n".to_vec())]);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[0].contains("setval('public.s', 7, true)") && !statements[0].contains("lo_open"));
        assert!(statements[1].contains("-- Data for Name: BLOBS") && statements[1].contains("BEGIN;"));
        assert!(statements[1].contains("COMMIT;\n") && !statements[1].contains("restrict"), "{}", statements[1]);
    }

    #[tokio::test]
    async fn large_blocks_are_cut_at_row_boundaries_and_a_name_may_span_lines() {
        let row = format!("{}\n", "r".repeat(999));
        let rows = row.repeat(CHUNK / 1000 * 2 + 10);
        let output = format!("{HEAD}COPY public.\"two\nlines\" (a) FROM stdin;\n{rows}\\.\n");
        let (_, copies, statements) = run(output.as_bytes()).await.unwrap();
        assert!(statements.is_empty(), "{statements:?}");
        assert_eq!(copies.len(), 3, "two full chunks and the rest");
        assert!(copies.iter().all(|(s, _)| s == "COPY public.\"two\nlines\" (a) FROM stdin;"));
        assert!(copies.iter().all(|(_, r)| r.ends_with(b"\n") && r.len() % 1000 == 0));
        assert_eq!(copies.iter().map(|(_, r)| r.len()).sum::<usize>(), rows.len());
    }

    #[tokio::test]
    async fn output_that_ends_inside_a_copy_block_is_an_error() {
        let output = format!("{HEAD}COPY public.t (a) FROM stdin;\n1\n2\n");
        let err = run(output.as_bytes()).await.unwrap_err().to_string();
        assert!(err.contains("ended inside a COPY block"), "{err}");
    }

    #[test]
    fn comment_only_text_is_not_a_statement() {
        assert!(!has_statement("--\n-- Name: x; Type: TABLE DATA\n--\n\n"));
        assert!(has_statement("--\nSELECT 1;\n"));
        assert!(is_entry_header("-- Name: s; Type: SEQUENCE SET; Schema: public; Owner: o\n"));
        assert!(!is_entry_header("-- Dumped from database version 15.18\n"));
    }
}
