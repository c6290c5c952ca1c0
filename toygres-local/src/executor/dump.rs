//! Streaming one program's standard output into one object of an image: the shared last step of
//! the logical backup (`pg_dumpall`, `pg_dump`, [`super::backup`]) and the physical one
//! (`pg_basebackup`, [`super::physical`]), which both import it from here.

use super::codec::{compress_into, store_into};
use super::jobs::JobCtx;
use super::stored::ObjectSink;
use super::Inner;
use std::process::Stdio;
use tokio::process::Command;
use toygres_core::manifest::ManifestObject;
use toygres_core::{Error, Result, Transfer};

const BACKEND: &str = "local executor";

/// What a dump program writes on its standard output.
#[derive(Clone, Copy)]
pub(crate) enum Output {
    /// Uncompressed bytes: compressed here with the executor's settings, counted as progress.
    Raw,
    /// Already zstd-compressed (by the server): stored as is. `report` reads the program's own
    /// `(done, total)` byte report from a line of its standard error (such lines are not logged).
    Zstd { report: fn(&str) -> Option<(u64, u64)> },
}

/// Runs a dump program and streams its standard output into object `name` (compressed here unless
/// it already is). The object is completed only when the program succeeded.
pub(crate) async fn dump(
    mut cmd: Command,
    output: Output,
    transfer: &Transfer,
    name: &str,
    inner: &Inner,
    ctx: &JobCtx,
) -> Result<ManifestObject> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| Error::backend(BACKEND, format!("cannot run {program}"), e))?;
    let captured = match (child.stderr.take(), output) {
        (Some(err), Output::Raw) => ctx.log.capture(err, &program),
        (Some(err), Output::Zstd { report }) => {
            let progress = ctx.progress.clone();
            ctx.log.capture_with(err, &program, move |line| match report(line) {
                Some((done, total)) => {
                    progress.set_total(total);
                    progress.advance_to(done);
                    false
                }
                None => true,
            })
        }
        (None, _) => Default::default(),
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let mut sink = ObjectSink::open(transfer, name, ctx)?;
    let streamed = match output {
        Output::Raw => compress_into(stdout, &mut sink, inner.compression, &ctx.progress).await.map(Some),
        Output::Zstd { .. } => store_into(stdout, &mut sink).await.map(|()| None),
    };
    let status = child.wait().await;
    captured.done().await;
    let raw_size = match (streamed, status) {
        (Ok(raw_size), Ok(status)) if status.success() => raw_size,
        (Err(e), _) => {
            sink.abort().await;
            return Err(e);
        }
        (Ok(_), status) => {
            let stored = sink.stored_size();
            sink.abort().await;
            let how = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            let short = program.rsplit('/').next().unwrap_or(&program).to_string();
            let what = format!("{short} for {name} failed ({how}) after {stored} bytes; see the job log");
            return Err(Error::backend_msg(BACKEND, what));
        }
    };
    let object = sink.finish(raw_size).await?;
    ctx.log.line(&format!("stored {name}: {} bytes, {}", object.size, object.sha256));
    Ok(object)
}
