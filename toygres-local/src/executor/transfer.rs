//! Moving one object of an image through a [`Transfer`]: an `object_store` handle in-process, or an
//! external copy program (azcopy) fed on stdin / read from stdout. Rendered program arguments may
//! hold a secret query: they are never logged.

use super::joblog::{Captured, JobLog};
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::GetResultPayload;
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use toygres_core::{CommandTransfer, Error, ImageId, Result, Transfer};

const BACKEND: &str = "local executor";

/// The secrets a transfer carries (to redact from logs).
pub(crate) fn transfer_secrets(transfer: &Transfer) -> Vec<String> {
    match transfer {
        Transfer::ObjectStore { .. } => vec![],
        Transfer::Command(c) => {
            let mut s: Vec<String> = c.secret_env.iter().map(|(_, v)| v.expose().to_string()).collect();
            if let Some(q) = &c.url_query {
                s.push(q.expose().trim_start_matches('?').to_string());
            }
            s
        }
    }
}

fn command(c: &CommandTransfer, args: Vec<String>, log: &JobLog, what: &str) -> Command {
    let mut cmd = crate::cluster::process::command(&c.program);
    cmd.args(args).kill_on_drop(true);
    for (k, v) in &c.env {
        cmd.env(k, v);
    }
    for (k, v) in &c.secret_env {
        cmd.env(k, v.expose());
    }
    log.line(&format!("{what}: running {}", c.program));
    cmd
}

/// A copy program and the capture of its output.
pub(crate) struct Proc {
    child: Child,
    output: Vec<Captured>,
}

fn spawn(mut cmd: Command, program: &str, log: &JobLog, what: &str) -> Result<Proc> {
    let mut child = cmd.spawn().map_err(|e| {
        Error::backend(BACKEND, format!("{what}: cannot run {program}; is it installed and on PATH?"), e)
    })?;
    let output = child.stderr.take().map(|err| log.capture(err, program)).into_iter().collect();
    Ok(Proc { child, output })
}

/// Waits for the program and its captured output; fails unless it exited successfully.
async fn wait_ok(proc: &mut Proc, program: &str, what: &str) -> Result<()> {
    let status = proc.child.wait().await;
    for captured in proc.output.drain(..) {
        captured.done().await;
    }
    let status = status.map_err(|e| Error::backend(BACKEND, format!("{what}: waiting for {program}"), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::backend_msg(BACKEND, format!("{what}: {program} exited with {status}; see the job log")))
    }
}

/// Runs the transfer's login step, if it has one.
pub(crate) async fn login(transfer: &Transfer, log: &JobLog) -> Result<()> {
    let Transfer::Command(c) = transfer else { return Ok(()) };
    let Some(args) = &c.login else { return Ok(()) };
    let mut cmd = command(c, args.clone(), log, "login");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut proc = spawn(cmd, &c.program, log, "login")?;
    if let Some(out) = proc.child.stdout.take() {
        proc.output.push(log.capture(out, &c.program));
    }
    wait_ok(&mut proc, &c.program, "login").await
}

/// Where one object's bytes go.
#[allow(clippy::large_enum_variant)] // one per object being moved
pub(crate) enum Sink {
    Store(Box<BufWriter>),
    Command { proc: Proc, stdin: Option<ChildStdin>, program: String, name: String },
}

impl Sink {
    /// Opens object `name` for writing.
    pub(crate) fn open(transfer: &Transfer, name: &str, log: &JobLog) -> Result<Self> {
        match transfer {
            Transfer::ObjectStore { store, prefix } => {
                let path = Path::from(format!("{prefix}/{name}"));
                Ok(Sink::Store(Box::new(BufWriter::with_capacity(store.clone(), path, 8 << 20))))
            }
            Transfer::Command(c) => {
                let what = format!("upload of {name}");
                let mut cmd = command(c, c.render(&c.upload_from_stdin, name), log, &what);
                cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
                let mut proc = spawn(cmd, &c.program, log, &what)?;
                if let Some(out) = proc.child.stdout.take() {
                    proc.output.push(log.capture(out, &c.program));
                }
                let stdin = proc.child.stdin.take();
                Ok(Sink::Command { proc, stdin, program: c.program.clone(), name: name.to_string() })
            }
        }
    }

    /// Appends `data`.
    pub(crate) async fn write(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Sink::Store(w) => {
                w.write_all(data).await.map_err(|e| Error::backend(BACKEND, "writing to the blob store", e))
            }
            Sink::Command { proc, stdin, program, name } => {
                let pipe = stdin.as_mut().expect("stdin open until finish");
                if let Err(e) = pipe.write_all(data).await {
                    // The program quit early: its exit status and last words explain why.
                    stdin.take();
                    wait_ok(proc, program, &format!("upload of {name}")).await?;
                    let why = format!("upload of {name}: {program} stopped reading; see the job log");
                    return Err(Error::backend(BACKEND, why, e));
                }
                Ok(())
            }
        }
    }

    /// Completes the object (it becomes visible only now for object stores).
    pub(crate) async fn finish(self) -> Result<()> {
        match self {
            Sink::Store(mut w) => {
                w.shutdown().await.map_err(|e| Error::backend(BACKEND, "completing an upload to the blob store", e))
            }
            Sink::Command { mut proc, stdin, program, name } => {
                drop(stdin);
                wait_ok(&mut proc, &program, &format!("upload of {name}")).await
            }
        }
    }

    /// Abandons the object.
    pub(crate) async fn abort(self) {
        match self {
            Sink::Store(mut w) => {
                let _ = w.abort().await;
            }
            Sink::Command { mut proc, .. } => {
                let _ = proc.child.kill().await;
            }
        }
    }
}

/// Where one object's bytes come from.
#[allow(clippy::large_enum_variant)] // one per object being moved
pub(crate) enum Source {
    Store(BoxStream<'static, object_store::Result<Bytes>>),
    /// A local file of the blob store, read in large chunks ([`crate::blobs::read_chunk`]).
    File(tokio::fs::File),
    Command {
        proc: Proc,
        stdout: ChildStdout,
        program: String,
        name: String,
    },
}

impl Source {
    /// Opens object `name` of `image` for reading; a missing object is [`Error::ImageIncomplete`].
    pub(crate) async fn open(transfer: &Transfer, image: ImageId, name: &str, log: &JobLog) -> Result<Self> {
        match transfer {
            Transfer::ObjectStore { store, prefix } => {
                let path = Path::from(format!("{prefix}/{name}"));
                match store.get_opts(&path, Default::default()).await {
                    Ok(got) if got.range.start == 0 => match got.payload {
                        GetResultPayload::File(file, _) => Ok(Source::File(tokio::fs::File::from_std(file))),
                        GetResultPayload::Stream(stream) => Ok(Source::Store(stream)),
                    },
                    Ok(got) => Ok(Source::Store(got.into_stream())),
                    Err(object_store::Error::NotFound { .. }) => {
                        Err(Error::ImageIncomplete { image, detail: format!("object {name} is missing") })
                    }
                    Err(e) => Err(Error::backend(BACKEND, format!("reading {name} from the blob store"), e)),
                }
            }
            Transfer::Command(c) => {
                let what = format!("download of {name}");
                let mut cmd = command(c, c.render(&c.download_to_stdout, name), log, &what);
                cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
                let mut proc = spawn(cmd, &c.program, log, &what)?;
                let stdout = proc.child.stdout.take().expect("piped stdout");
                Ok(Source::Command { proc, stdout, program: c.program.clone(), name: name.to_string() })
            }
        }
    }

    /// The next chunk, `None` at the end.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>> {
        match self {
            Source::Store(s) => {
                s.next().await.transpose().map_err(|e| Error::backend(BACKEND, "reading from the blob store", e))
            }
            Source::File(file) => {
                crate::blobs::read_chunk(file).await.map_err(|e| Error::backend(BACKEND, "reading a local blob", e))
            }
            Source::Command { stdout, program, name, .. } => {
                let mut buf = BytesMut::with_capacity(1 << 20);
                let n = stdout.read_buf(&mut buf).await.map_err(|e| {
                    Error::backend(BACKEND, format!("download of {name}: reading {program}'s output"), e)
                })?;
                Ok((n > 0).then(|| buf.freeze()))
            }
        }
    }

    /// Checks that the source ended cleanly (the copy program succeeded).
    pub(crate) async fn finish(self) -> Result<()> {
        match self {
            Source::Store(_) | Source::File(_) => Ok(()),
            Source::Command { mut proc, program, name, .. } => {
                wait_ok(&mut proc, &program, &format!("download of {name}")).await
            }
        }
    }
}

/// The whole content of object `name` (small objects: the manifest, the globals).
pub(crate) async fn read_all(transfer: &Transfer, image: ImageId, name: &str, log: &JobLog) -> Result<Vec<u8>> {
    let mut source = Source::open(transfer, image, name, log).await?;
    let mut out = Vec::new();
    while let Some(chunk) = source.next().await? {
        out.extend_from_slice(&chunk);
    }
    source.finish().await?;
    Ok(out)
}

/// Writes a small object in one go.
pub(crate) async fn write_all(transfer: &Transfer, name: &str, data: &[u8], log: &JobLog) -> Result<()> {
    let mut sink = Sink::open(transfer, name, log)?;
    if let Err(e) = sink.write(data).await {
        sink.abort().await;
        return Err(e);
    }
    sink.finish().await
}
