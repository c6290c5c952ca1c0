//! Continuous WAL archiving of protected instances
//! ([`ClusterExecutor::start_wal_archiving`](toygres_core::ClusterExecutor::start_wal_archiving)):
//! a supervisor task per instance runs `pg_receivewal` over the replication slot
//! [`SLOT`] as a child process ([`receiver`]) into a private spool, and ships what it receives
//! into the instance's [`WalArchive`](toygres_core::wal::WalArchive) every [`TICK`] ([`ship`]).
//!
//! # Files, under `<base>/archives/<instance-id>/` (root only, mode 0700)
//! - `lock`: held with an exclusive `flock` by the process running the supervisor, for its whole
//!   life: one receiver per instance across every process (replica) sharing the base directory.
//!   The kernel releases it when that process dies; the next
//!   [`Toygres::resume_protection`](toygres_core::Toygres::resume_protection) anywhere takes over.
//! - `stop`: written by whoever stops archiving while another process holds the lock; the
//!   supervisor looks for it every tick and ends.
//! - `spool/`: what `pg_receivewal` writes (completed segments are removed once archived; the
//!   segment being written stays, so a restarted receiver resumes from its start).
//! - `pgpass`: the superuser's password for the receiver (0600), never in its arguments or
//!   environment. `receiver.pid`: the running receiver's pid.
//!
//! # What a crash leaves
//! A SIGKILLed receiver is started again within a tick; it resumes from the spool or, when that
//! is empty, from the slot's position, which the server holds WAL for: the archive gets no gap.
//! A dead control plane leaves the slot (the server keeps WAL for it) until a supervisor runs
//! again or archiving is stopped, which drops it.

mod receiver;
mod ship;
mod state;

use super::Inner;
use crate::cluster::lockfile::{try_lock, TryLock};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use toygres_core::wal::Lsn;
use toygres_core::{Error, InstanceId, InstanceSpec, Password, Result, WalArchiveSpec};

/// The replication slot the receiver streams from.
pub(crate) const SLOT: &str = "toygres_archive";
/// How often the supervisor ships what arrived and checks on its receiver.
pub(crate) const TICK: Duration = Duration::from_millis(100);
const BACKEND: &str = "local executor";

/// The supervisors running in this process.
#[derive(Default)]
pub(crate) struct Archivers {
    running: Mutex<HashMap<InstanceId, Running>>,
}

impl Archivers {
    /// Aborts every supervisor of this process (their receivers are killed as they drop), for
    /// throw-away executors ([`crate::LocalExecutor::discard_blocking`]). Slots stay.
    pub(crate) fn abort_all(&self) {
        for (_, running) in self.running.lock().expect("archivers lock").drain() {
            running.task.abort();
        }
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// `<base>/archives/<instance-id>`.
pub(crate) fn dir(inner: &Inner, instance: InstanceId) -> PathBuf {
    inner.base_dir.join("archives").join(instance.to_string())
}

/// The pid of `instance`'s running receiver, when this base directory has one (tests kill it).
pub(crate) fn receiver_pid(base_dir: &std::path::Path, instance: InstanceId) -> Option<i32> {
    let path = base_dir.join("archives").join(instance.to_string()).join("receiver.pid");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Starts `spec`'s supervisor unless one runs (here or in another process). Checks first that
/// the instance can be archived (running, `wal_level` replica or logical, a free WAL sender,
/// 16 MiB segments) and creates its slot, so that a refusal comes back to the caller.
pub(crate) async fn start(inner: &Arc<Inner>, spec: &WalArchiveSpec) -> Result<()> {
    let id = spec.instance.id;
    {
        let mut running = inner.archivers.running.lock().expect("archivers lock");
        match running.get(&id) {
            Some(r) if !r.task.is_finished() => return Ok(()),
            Some(_) => {
                running.remove(&id);
            }
            None => {}
        }
    }
    let dir = dir(inner, id);
    std::fs::create_dir_all(&dir).map_err(|e| crate::cluster::io_err(format!("creating {}", dir.display()), e))?;
    crate::cluster::set_mode(&dir, 0o700)?;
    let lock = match try_lock(&dir.join("lock"), true)? {
        TryLock::Acquired(lock) => lock,
        TryLock::Held | TryLock::Missing => return Ok(()),
    };
    let _ = std::fs::remove_file(dir.join("stop"));
    let cluster = inner.cluster_of(&spec.instance)?;
    let slot_start = receiver::prepare(&cluster, &spec.password, &spec.instance).await?;
    let (stop, stopped) = watch::channel(false);
    let (inner2, spec2) = (inner.clone(), spec.clone());
    let task = tokio::spawn(async move {
        let _lock = lock;
        if let Err(e) = ship::supervise(inner2, spec2, slot_start, stopped).await {
            tracing::warn!(instance = %id, error = %e, "WAL archiving stopped");
        }
    });
    inner.archivers.running.lock().expect("archivers lock").insert(id, Running { stop, task });
    Ok(())
}

/// Stops `instance`'s supervisor (here, or in another process through the `stop` file), drops
/// its slot when the server runs, and removes its files. Idempotent.
pub(crate) async fn stop(inner: &Arc<Inner>, instance: &InstanceSpec, password: Option<&Password>) -> Result<()> {
    let dir = dir(inner, instance.id);
    let here = inner.archivers.running.lock().expect("archivers lock").remove(&instance.id);
    if let Some(running) = here {
        let _ = running.stop.send(true);
        let _ = running.task.await;
    }
    if dir.exists() {
        std::fs::write(dir.join("stop"), b"")
            .map_err(|e| crate::cluster::io_err(format!("writing {}", dir.display()), e))?;
        let lock = crate::cluster::lockfile::lock(&dir.join("lock"), Duration::from_secs(30), "stopping WAL archiving")
            .await?;
        if let (Some(password), Ok(cluster)) = (password, inner.cluster_of(instance)) {
            if cluster.is_running() {
                receiver::drop_slot(&cluster, password).await?;
            }
        }
        std::fs::remove_dir_all(&dir).map_err(|e| crate::cluster::io_err(format!("removing {}", dir.display()), e))?;
        drop(lock);
    }
    Ok(())
}

/// `pg_create_restore_point(name)` on the running instance: where its record is.
pub(crate) async fn restore_point(
    inner: &Inner,
    instance: &InstanceSpec,
    password: &Password,
    name: &str,
) -> Result<Lsn> {
    let client = inner.cluster_of(instance)?.connect("postgres", password).await?;
    let row = client
        .query_one("SELECT pg_catalog.pg_create_restore_point($1)::text", &[&name])
        .await
        .map_err(|e| Error::backend(BACKEND, "creating a restore point", e))?;
    row.get::<_, String>(0).parse()
}
