//! The replication slot and the `pg_receivewal` child that streams from it.

use super::{BACKEND, SLOT};
use crate::cluster::LocalCluster;
use std::path::Path;
use std::process::Stdio;
use toygres_core::wal::{Lsn, SEGMENT_SIZE};
use toygres_core::{Error, InstanceSpec, Password, Result};

/// Where the slot stands when a supervisor starts.
#[derive(Debug, Clone, Copy)]
pub(super) struct SlotStart {
    /// Its position: the server keeps every WAL file from there on.
    pub(super) lsn: Lsn,
    /// Whether it was created just now (none existed, or the old one had lost WAL): then the WAL
    /// between the archive's head and `lsn` is gone. An existing slot's WAL since the head is in
    /// the server or in the spool, which the new supervisor ships.
    pub(super) created: bool,
}

/// Refuses an instance that cannot be archived, and creates its slot (reserving WAL from now)
/// unless it exists.
pub(super) async fn prepare(cluster: &LocalCluster, password: &Password, instance: &InstanceSpec) -> Result<SlotStart> {
    let client = cluster.connect("postgres", password).await?;
    let sql = "SELECT current_setting('wal_level'), current_setting('max_wal_senders')::int, \
               current_setting('wal_segment_size')::text";
    let row = client.query_one(sql, &[]).await.map_err(|e| Error::backend(BACKEND, "reading WAL settings", e))?;
    let (level, senders, segment): (String, i32, String) = (row.get(0), row.get(1), row.get(2));
    let refuse = |reason: String| Err(Error::InvalidRequest { field: "instance_id", reason });
    if level == "minimal" || senders < 1 {
        return refuse(format!(
            "instance {} runs with wal_level={level} and max_wal_senders={senders}; protection needs wal_level=replica \
             and a free WAL sender",
            instance.name
        ));
    }
    if segment != format!("{}MB", SEGMENT_SIZE >> 20) {
        return refuse(format!(
            "instance {} has {segment} WAL segments; only 16MB segments are archived",
            instance.name
        ));
    }
    let create = format!(
        "SELECT pg_catalog.pg_create_physical_replication_slot('{SLOT}', true) \
         WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots WHERE slot_name = '{SLOT}')"
    );
    let created =
        client.query(&create, &[]).await.map_err(|e| Error::backend(BACKEND, "creating the replication slot", e))?;
    let created = !created.is_empty();
    let sql =
        format!("SELECT restart_lsn::text, wal_status FROM pg_catalog.pg_replication_slots WHERE slot_name = '{SLOT}'");
    let row = client.query_one(&sql, &[]).await.map_err(|e| Error::backend(BACKEND, "reading the slot", e))?;
    let (restart, status): (Option<String>, Option<String>) = (row.get(0), row.get(1));
    match (restart, status.as_deref()) {
        (Some(lsn), Some(s)) if s != "lost" => Ok(SlotStart { lsn: lsn.parse()?, created }),
        _ => {
            // The server removed WAL the slot needed (max_slot_wal_keep_size): start again from
            // now; the supervisor records the gap against the archive's head.
            drop_slot(cluster, password).await?;
            let fresh = Box::pin(prepare(cluster, password, instance)).await?;
            Ok(SlotStart { created: true, ..fresh })
        }
    }
}

/// Drops the slot (the server no longer keeps WAL for it), once the receiver that was killed
/// has let go of it (up to 10 s). Idempotent.
pub(crate) async fn drop_slot(cluster: &LocalCluster, password: &Password) -> Result<()> {
    let client = cluster.connect("postgres", password).await?;
    let sql = format!("SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = '{SLOT}'");
    for _ in 0..100 {
        let rows = client.query(&sql, &[]).await.map_err(|e| Error::backend(BACKEND, "reading the slot", e))?;
        match rows.first().map(|r| r.get::<_, bool>(0)) {
            None => return Ok(()),
            Some(true) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Some(false) => {
                let drop = format!("SELECT pg_catalog.pg_drop_replication_slot('{SLOT}')");
                return client.batch_execute(&drop).await.map_err(|e| Error::backend(BACKEND, "dropping the slot", e));
            }
        }
    }
    Err(Error::backend_msg(BACKEND, format!("replication slot {SLOT} stayed in use for 10 s; stop its receiver")))
}

/// Starts `pg_receivewal` into `spool` from the slot, flushing and reporting every write
/// (`--synchronous`), exiting when the connection ends (`--no-loop`: the supervisor starts it
/// again). The password is in the private `pgpass` file next to the spool.
pub(super) fn spawn(cluster: &LocalCluster, password: &Password, dir: &Path) -> Result<tokio::process::Child> {
    let pgpass = dir.join("pgpass");
    let escaped = password.expose().replace('\\', "\\\\").replace(':', "\\:");
    write_private(&pgpass, format!("127.0.0.1:{}:*:postgres:{escaped}\n", cluster.port()).as_bytes())?;
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).map_err(|e| crate::cluster::io_err(format!("creating {}", spool.display()), e))?;
    remove_torn_partials(&spool)?;
    let mut cmd = crate::cluster::process::command(cluster.binaries().path("pg_receivewal"));
    cmd.env("PGHOST", "127.0.0.1")
        .env("PGPORT", cluster.port().to_string())
        .env("PGUSER", "postgres")
        .env("PGAPPNAME", SLOT)
        .env("PGPASSFILE", &pgpass)
        .env("PGCONNECT_TIMEOUT", "10");
    cmd.arg("-D").arg(&spool).args(["--slot", SLOT, "--synchronous", "--no-loop", "--no-password", "-s", "1"]);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("receiver.log"))
        .map_err(|e| crate::cluster::io_err(format!("opening {}", dir.join("receiver.log").display()), e))?;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log)).kill_on_drop(true);
    // It dies with the control plane, however that dies (SIGKILL too): a receiver left running
    // would hold the slot against the supervisor that takes over.
    // SAFETY: prctl is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| Error::backend(BACKEND, "starting pg_receivewal", e))?;
    if let Some(pid) = child.id() {
        let _ = std::fs::write(dir.join("receiver.pid"), pid.to_string());
    }
    Ok(child)
}

/// Removes a segment file the previous receiver was still creating when it died: it pads each
/// new `.partial` with zeros to 16 MiB before writing WAL into it, and refuses to start over a
/// file of any other size ("should be 0 or 16777216"). Such a file holds no WAL yet; the new
/// receiver streams that segment again from the slot, which the server kept it for.
fn remove_torn_partials(spool: &Path) -> Result<()> {
    let entries =
        std::fs::read_dir(spool).map_err(|e| crate::cluster::io_err(format!("listing {}", spool.display()), e))?;
    for entry in entries.filter_map(|e| e.ok()) {
        let torn = entry.file_name().to_string_lossy().ends_with(".partial")
            && entry.metadata().is_ok_and(|m| m.len() != 0 && m.len() != SEGMENT_SIZE);
        if torn {
            tracing::info!(file = %entry.path().display(), "removing a segment file a killed receiver left half created");
            std::fs::remove_file(entry.path())
                .map_err(|e| crate::cluster::io_err(format!("removing {}", entry.path().display()), e))?;
        }
    }
    Ok(())
}

fn write_private(path: &Path, content: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| crate::cluster::io_err(format!("writing {}", path.display()), e))?;
    file.write_all(content).map_err(|e| crate::cluster::io_err(format!("writing {}", path.display()), e))
}
