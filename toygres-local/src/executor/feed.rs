//! Feeding one program's standard input while its output goes to the job log: how the restore
//! ([`super::restore`]) and the sectioned load of a large database ([`super::sections`]) run
//! `psql` and `pg_restore`, both importing it from here.

use super::jobs::JobCtx;
use std::process::Stdio;
use tokio::process::Command;
use toygres_core::{Error, Result};

const BACKEND: &str = "local executor";

/// Runs `cmd` with its stdin fed by `write`; fails if either fails. Output goes to the job log.
pub(crate) async fn feed<F, Fut>(mut cmd: Command, what: &str, ctx: &JobCtx, write: F) -> Result<()>
where
    F: FnOnce(tokio::process::ChildStdin) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| Error::backend(BACKEND, format!("{what}: cannot start it"), e))?;
    let captured: Vec<_> = [child.stdout.take().map(|o| ctx.log.capture(o, what))]
        .into_iter()
        .chain([child.stderr.take().map(|e| ctx.log.capture(e, what))])
        .flatten()
        .collect();
    let written = write(child.stdin.take().expect("piped stdin")).await;
    if written.is_err() {
        let _ = child.start_kill();
    }
    let status = child.wait().await;
    for c in captured {
        c.done().await;
    }
    written?;
    let status = status.map_err(|e| Error::backend(BACKEND, format!("{what}: waiting"), e))?;
    if !status.success() {
        return Err(Error::backend_msg(BACKEND, format!("{what} failed ({status}); see the job log")));
    }
    Ok(())
}
