//! One OS identity per instance. A tenant (whoever holds an instance's password) runs programs
//! and reads files as its server's OS user; when every instance ran as `postgres`, a tenant read
//! every other tenant's data files and signalled their servers. So, when this process is root,
//! each instance gets a system user of its own, created with its volume and removed with it:
//! `tg` and 30 hex digits of the instance id (deterministic, so a re-run after a crash finds
//! it), no home, no login shell, a group of its own. Its data directory (0700) is readable by it
//! alone; the control plane's files are root's and private.

use super::process::std_command;
use super::ServerUser;
use toygres_core::{Error, ImageId, InstanceId, Result};

const WHO: &str = "local executor";

/// The OS user name of `instance` (32 characters, the longest `useradd` takes).
pub fn instance_user_name(instance: InstanceId) -> String {
    let hex: String = instance.to_string().chars().filter(|c| *c != '-').take(30).collect();
    format!("tg{hex}")
}

/// The OS user of `instance`, created if missing (idempotent).
pub fn ensure_instance_user(instance: InstanceId) -> Result<ServerUser> {
    ensure_user(&instance_user_name(instance))
}

/// Removes the OS user of `instance` and its group, if they exist (see [`remove_user`]).
pub fn remove_instance_user(instance: InstanceId) -> Result<()> {
    remove_user(&instance_user_name(instance))
}

/// The OS user that recovers a clone image's data directory once, while the image is taken:
/// `tgi` and 29 hex digits of the image id (`i` is not a hex digit, so it never names an
/// instance's user). It owns nothing once the image is ready.
pub fn image_user_name(image: ImageId) -> String {
    let hex: String = image.to_string().chars().filter(|c| *c != '-').take(29).collect();
    format!("tgi{hex}")
}

/// A system user named `name` (no home, no login shell, a group of its own), created if
/// missing (idempotent).
pub fn ensure_user(name: &str) -> Result<ServerUser> {
    if let Ok(user) = ServerUser::resolve(name) {
        return Ok(user);
    }
    let mut add = std_command("useradd");
    add.args(["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]);
    add.args(["--user-group", name]);
    let out = add.output().map_err(|e| Error::backend(WHO, "running useradd (is the passwd package installed?)", e))?;
    // 9: it exists already (a concurrent re-run created it).
    if !out.status.success() && out.status.code() != Some(9) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::backend_msg(WHO, format!("creating OS user {name}: useradd: {}", stderr.trim())));
    }
    ServerUser::resolve(name)
}

/// Removes the OS user `name` and its group, if they exist. Its processes must be gone:
/// `userdel` refuses a user that still runs one, so this retries for a few seconds while the
/// last backends of a stopped server exit.
pub fn remove_user(name: &str) -> Result<()> {
    let mut last = String::new();
    for attempt in 0..50 {
        if ServerUser::resolve(name).is_err() {
            return Ok(());
        }
        let out = std_command("userdel").arg(name).output().map_err(|e| Error::backend(WHO, "running userdel", e))?;
        // 6: no such user (removed concurrently).
        if out.status.success() || out.status.code() == Some(6) {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).trim().to_string();
        std::thread::sleep(std::time::Duration::from_millis(20 * (attempt + 1).min(10)));
    }
    Err(Error::backend_msg(WHO, format!("removing OS user {name}: userdel: {last}")))
}

/// Sends SIGKILL to every process running as `uid` (found through the owners of `/proc/<pid>`),
/// e.g. what a server's user left running after the server stopped. Best effort.
pub fn kill_processes_of(uid: u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.filter_map(|e| e.ok()) {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if entry.metadata().is_ok_and(|m| m.uid() == uid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Removes the OS users of every instance volume under an executor's base directory (for
/// throw-away executors: tests, examples). Best effort: failures are logged.
pub fn remove_instance_users_under(base_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base_dir.join("instances")) else { return };
    for id in entries.filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("pg-")?.parse().ok()) {
        if let Err(e) = remove_instance_user(id) {
            tracing::warn!(error = %e, "leaving an instance's OS user behind");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_distinct_and_short_enough() {
        let (a, b) = (InstanceId::new(), InstanceId::new());
        assert_eq!(instance_user_name(a), instance_user_name(a));
        assert_ne!(instance_user_name(a), instance_user_name(b));
        assert_eq!(instance_user_name(a).len(), 32);
        assert!(instance_user_name(a).chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
