//! The connections that load a data section: [`COPY_CONNECTIONS`] take row chunks from a shared
//! queue, one more runs the other statements in order.

use super::{Dump, BACKEND, COPY_CONNECTIONS};
use crate::cluster::LocalCluster;
use bytes::Bytes;
use futures::SinkExt;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Mutex};
use toygres_core::{Error, Password, Result};

/// Rows of one `COPY` block: whole lines in COPY text format, without the `\.` end marker.
pub(super) struct CopyChunk {
    pub(super) statement: Arc<str>,
    pub(super) rows: Bytes,
}

/// The session settings every connection applies first; `None` until they are known.
pub(super) type Settings = watch::Receiver<Option<Arc<String>>>;

/// Runs the loading connections until both queues are closed and drained.
pub(super) async fn run(
    cluster: &LocalCluster,
    password: &Password,
    dump: &Dump<'_>,
    settings: Settings,
    copies: mpsc::Receiver<CopyChunk>,
    statements: mpsc::Receiver<String>,
) -> Result<()> {
    let copies = Arc::new(Mutex::new(copies));
    let copying = futures::future::try_join_all((0..COPY_CONNECTIONS).map(|_| {
        let (copies, settings) = (copies.clone(), settings.clone());
        async move { copy_worker(connect(cluster, password, dump, settings).await?, copies).await }
    }));
    let statements = async { sql_worker(connect(cluster, password, dump, settings.clone()).await?, statements).await };
    tokio::try_join!(copying, statements).map(|_| ())
}

/// A connection to the database with the dump's session settings applied.
async fn connect(
    cluster: &LocalCluster,
    password: &Password,
    dump: &Dump<'_>,
    mut settings: Settings,
) -> Result<tokio_postgres::Client> {
    let client = cluster.connect(&dump.db.name, password).await?;
    let settings = match settings.wait_for(Option::is_some).await {
        Ok(settings) => settings.clone().expect("waited for it"),
        // The reader failed before it found the settings; its error is the one reported.
        Err(_) => return Err(Error::backend_msg(BACKEND, "the data section ended before its settings")),
    };
    client.batch_execute(&settings).await.map_err(|e| db_err("applying the dump's session settings", e))?;
    Ok(client)
}

/// Loads chunks until the queue is closed and empty.
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
