//! The data section as `pg_restore -f -` writes it (the path for archives [`super::archive`]
//! does not read): session settings, `COPY` blocks cut into row chunks, other statements.

use super::workers::CopyChunk;
use super::{BACKEND, CHUNK};
use bytes::Bytes;
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::{mpsc, watch};
use toygres_core::{Error, Result};

/// Splits `pg_restore -f -` output: the session settings before the first entry go to every
/// connection (`preamble`), `COPY` blocks are cut into [`CHUNK`]-sized row chunks (`copies`),
/// the other statements go to `statements` in order. psql meta-commands (`\restrict`) are
/// dropped: nothing here runs psql.
pub(super) async fn split<R: AsyncBufRead + Unpin>(
    mut out: R,
    preamble: watch::Sender<Option<Arc<String>>>,
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
