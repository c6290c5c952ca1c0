//! The template engine: `{{key}}` placeholders replaced by JSON values, then parsed into a typed
//! k8s-openapi object.
//!
//! A placeholder stands for a whole YAML value. Every value is written as JSON (a string is quoted and
//! escaped, a map becomes a flow mapping), which YAML reads back verbatim, so no value can change the
//! structure of a manifest. Unknown placeholders and unused values are errors.

use serde::de::DeserializeOwned;
use serde_json::Value;
use toygres_core::{Error, Result};

/// A template of the crate: its file name and text.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// File name under `templates/`.
    pub name: &'static str,
    /// The YAML text.
    pub text: &'static str,
}

macro_rules! template {
    ($file:literal) => {
        Template { name: $file, text: include_str!(concat!("../templates/", $file)) }
    };
}

/// `pvc.yaml`.
pub const PVC: Template = template!("pvc.yaml");
/// `secret.yaml`.
pub const SECRET: Template = template!("secret.yaml");
/// `configmap.yaml`.
pub const CONFIG_MAP: Template = template!("configmap.yaml");
/// `statefulset.yaml`.
pub const STATEFUL_SET: Template = template!("statefulset.yaml");
/// `service.yaml`.
pub const SERVICE: Template = template!("service.yaml");
/// `backup-job.yaml`.
pub const BACKUP_JOB: Template = template!("backup-job.yaml");
/// `restore-job.yaml`.
pub const RESTORE_JOB: Template = template!("restore-job.yaml");
/// `volumesnapshot.yaml`: a clone image's data ([`crate::clone`]).
pub const VOLUME_SNAPSHOT: Template = template!("volumesnapshot.yaml");
/// `restore-clone-job.yaml`: the restore job of a clone image.
pub const RESTORE_CLONE_JOB: Template = template!("restore-clone-job.yaml");
/// `networkpolicy.yaml`: an instance's NetworkPolicy ([`crate::network`]).
pub const NETWORK_POLICY: Template = template!("networkpolicy.yaml");
/// `probe-job.yaml`: the in-cluster connection test ([`crate::probe`]).
pub const PROBE_JOB: Template = template!("probe-job.yaml");
/// Every manifest template.
pub const ALL: [Template; 11] = [
    PVC,
    SECRET,
    CONFIG_MAP,
    STATEFUL_SET,
    SERVICE,
    BACKUP_JOB,
    RESTORE_JOB,
    VOLUME_SNAPSHOT,
    RESTORE_CLONE_JOB,
    PROBE_JOB,
    NETWORK_POLICY,
];

/// The ConfigMap's `initdb.sh`: run by the PostgreSQL image's entrypoint after it initialised an
/// empty volume, it has the data directory include the ConfigMap's `postgresql.conf`.
pub const INITDB_CONFIG_SH: &str = include_str!("../templates/initdb-config.sh");
/// Helpers of every job script: strict mode, logging, the FIFO exchange between a job's two containers.
pub const COMMON_SH: &str = include_str!("../templates/common.sh");
/// Shell helpers of the toolbox containers, which move bytes (after [`COMMON_SH`]).
pub const TRANSFER_SH: &str = include_str!("../templates/transfer.sh");
/// `split_database_sql`: `DatabaseSql::from_pg_dump` in awk.
pub const DATABASE_SQL_SH: &str = include_str!("../templates/database-sql.sh");
/// What the backup job's `dump` container records about the source, for both formats.
pub const SOURCE_META_SH: &str = include_str!("../templates/source-meta.sh");
/// Sealing and opening of encrypted images' objects in the toolbox containers (after
/// [`TRANSFER_SH`]; see [`crate::sealing`]).
pub const SEAL_SH: &str = include_str!("../templates/seal.sh");
/// The backup job's `dump` container of a logical image (source's PostgreSQL image): `pg_dump`.
pub const BACKUP_DUMP_SH: &str = include_str!("../templates/backup-dump.sh");
/// The backup job's `dump` container of a physical image (source's PostgreSQL image):
/// `pg_basebackup` over a replication connection.
pub const BACKUP_BASEBACKUP_SH: &str = include_str!("../templates/backup-basebackup.sh");
/// The backup job's `dump` container of a clone image (source's PostgreSQL image): the globals,
/// then `CHECKPOINT` before the executor snapshots the source's volume.
pub const BACKUP_CLONE_SH: &str = include_str!("../templates/backup-clone.sh");
/// The backup job's `upload` container (toolbox).
pub const BACKUP_UPLOAD_SH: &str = include_str!("../templates/backup-upload.sh");
/// The restore job's `fetch` container (toolbox).
pub const RESTORE_FETCH_SH: &str = include_str!("../templates/restore-fetch.sh");
/// The restore job's `load` container (instance's PostgreSQL image).
pub const RESTORE_LOAD_SH: &str = include_str!("../templates/restore-load.sh");
/// Helpers of the restore jobs' PostgreSQL containers for a data directory that came whole from
/// another instance (physical and clone images): `server_major`, `apply_instance_config`,
/// `mark_restored`.
pub const DATA_DIR_SH: &str = include_str!("../templates/data-dir.sh");
/// The restore job's `prepare` container of a clone image (instance's PostgreSQL image).
pub const RESTORE_CLONE_SH: &str = include_str!("../templates/restore-clone.sh");
/// `unpack_physical`: the `load` container's restore of a physical image.
pub const RESTORE_UNPACK_SH: &str = include_str!("../templates/restore-unpack.sh");
/// The in-cluster connection test's script ([`crate::probe`]).
pub const PROBE_SH: &str = include_str!("../templates/probe.sh");

/// The complete script of the backup job's `dump` container for a logical image.
pub fn backup_dump_script() -> String {
    format!("{COMMON_SH}\n{SOURCE_META_SH}\n{DATABASE_SQL_SH}\n{BACKUP_DUMP_SH}")
}

/// The complete script of the backup job's `dump` container for a physical image.
pub fn backup_basebackup_script() -> String {
    format!("{COMMON_SH}\n{SOURCE_META_SH}\n{BACKUP_BASEBACKUP_SH}")
}

/// The complete script of the backup job's `dump` container for a clone image.
pub fn backup_clone_script() -> String {
    format!("{COMMON_SH}\n{SOURCE_META_SH}\n{BACKUP_CLONE_SH}")
}

/// The complete script of the backup job's `upload` container.
pub fn backup_upload_script() -> String {
    format!("{COMMON_SH}\n{TRANSFER_SH}\n{SEAL_SH}\n{BACKUP_UPLOAD_SH}")
}

/// The complete script of the restore job's `fetch` container.
pub fn restore_fetch_script() -> String {
    format!("{COMMON_SH}\n{TRANSFER_SH}\n{SEAL_SH}\n{RESTORE_FETCH_SH}")
}

/// The complete script of the restore job's `load` container (both formats: the verified plan
/// says which).
pub fn restore_load_script() -> String {
    format!("{COMMON_SH}\n{DATA_DIR_SH}\n{RESTORE_UNPACK_SH}\n{RESTORE_LOAD_SH}")
}

/// The complete script of the restore job's `prepare` container for a clone image.
pub fn restore_clone_script() -> String {
    format!("{COMMON_SH}\n{DATA_DIR_SH}\n{RESTORE_CLONE_SH}")
}

/// Substitutes `values` into `template` and returns the YAML text.
pub fn render_text(template: Template, values: &[(&str, Value)]) -> Result<String> {
    let bad = |what: String| Error::backend_msg("kubernetes executor", format!("template {}: {what}", template.name));
    let mut out = String::with_capacity(template.text.len());
    let mut used = vec![false; values.len()];
    let mut rest = template.text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| bad("unterminated {{".into()))?;
        let key = &after[..end];
        let index = values
            .iter()
            .position(|(k, _)| *k == key)
            .ok_or_else(|| bad(format!("no value for placeholder {{{{{key}}}}}")))?;
        used[index] = true;
        out.push_str(&serde_json::to_string(&values[index].1).map_err(|e| bad(e.to_string()))?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(bad(format!("value {:?} is not used", values[i].0)));
    }
    Ok(out)
}

/// Renders `template` with `values` and parses the result into `T`.
pub fn render<T: DeserializeOwned>(template: Template, values: &[(&str, Value)]) -> Result<T> {
    let text = render_text(template, values)?;
    serde_yaml::from_str(&text).map_err(|e| {
        Error::backend_msg("kubernetes executor", format!("template {} does not parse: {e}", template.name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T: Template = Template { name: "t.yaml", text: "a: {{a}}\nb: {{b}}\n" };

    #[test]
    fn values_cannot_change_the_structure() {
        let hostile = "x\nc: injected\n- [";
        let text = render_text(T, &[("a", json!(hostile)), ("b", json!({"k": "v"}))]).unwrap();
        let parsed: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed, json!({"a": hostile, "b": {"k": "v"}}));
    }

    #[test]
    fn missing_and_unused_values_are_errors() {
        let missing = render_text(T, &[("a", json!(1))]).unwrap_err().to_string();
        assert!(missing.contains("no value for placeholder {{b}}"), "{missing}");
        let unused = render_text(T, &[("a", json!(1)), ("b", json!(2)), ("c", json!(3))]).unwrap_err();
        assert!(unused.to_string().contains("\"c\" is not used"), "{unused}");
    }

    #[test]
    fn the_dump_reads_the_cluster_locale_with_the_cores_query() {
        let query = toygres_core::manifest::ClusterLocale::QUERY;
        assert!(SOURCE_META_SH.contains(&format!("FROM ({query}) q(e, c, t, p, l)")), "source-meta.sh lost the query");
    }

    #[test]
    fn the_scripts_name_the_objects_as_the_core_does() {
        let archive = toygres_core::manifest::archive_object_name(0);
        for script in [BACKUP_BASEBACKUP_SH, BACKUP_UPLOAD_SH] {
            assert!(script.contains(&archive), "{archive} missing");
        }
        assert!(RESTORE_FETCH_SH.contains(r"base-[0-9]{2}\.tar"), "the fetch accepts archive names");
    }

    /// `meter` logs progress lines while a slow stream flows (dd's updates, every fifth), counting
    /// from its base, and passes every byte through.
    #[test]
    fn the_meter_reports_progress_while_bytes_flow() {
        let tmp = tempfile::tempdir().unwrap();
        let feed = "for i in 1 2 3 4 5 6 7; do head -c 1000000 /dev/zero; sleep 1; done";
        let script = format!("{COMMON_SH}\n{TRANSFER_SH}\n({feed}) | meter 100 5000000 | wc -c");
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .env("TOYGRES_EXCHANGE", tmp.path())
            .envs([("TOYGRES_SIDE", "a"), ("TOYGRES_PEER", "b"), ("TOYGRES_TRANSFER_PROGRAM", "true")])
            .env("TOYGRES_TRANSFER_BASE_URL", "fake://x")
            .output()
            .expect("bash runs");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7000000");
        let (done, total) = crate::progress::last_progress(&log).unwrap_or_else(|| panic!("no progress: {log}"));
        assert!(done > 100 && done <= 7_000_100 && total.is_some_and(|t| t >= done.max(5_000_000)), "{log}");
        assert!(!log.contains(" copied, ") && !log.contains("records"), "{log}");
    }

    /// Only the toolbox containers seal and open (the data key is mounted there only), and they
    /// hash what is stored: sealed bytes on the way up, before opening on the way down.
    #[test]
    fn only_the_toolbox_scripts_seal_and_open() {
        for script in [backup_upload_script(), restore_fetch_script()] {
            assert!(script.contains("seal_stream() {") && script.contains("open_stream() {"));
        }
        for script in [
            backup_dump_script(),
            backup_basebackup_script(),
            backup_clone_script(),
            restore_load_script(),
            restore_clone_script(),
        ] {
            assert!(!script.contains("TOYGRES_DATA_KEY_FILE") && !script.contains("toygres-seal"));
        }
        assert!(BACKUP_UPLOAD_SH.contains(
            r#"zstd -q -3 -T"${TOYGRES_THREADS:-0}" |
    seal_stream "$1" | hash_stream "$work/$1" | upload "$1""#
        ));
        assert!(RESTORE_FETCH_SH.contains(
            r#"hash_stream "$work/$name" whole | open_stream "$name" |
      zstd -q -d"#
        ));
    }

    #[test]
    fn scripts_are_valid_bash() {
        for (name, script) in [
            ("backup-dump", backup_dump_script()),
            ("backup-basebackup", backup_basebackup_script()),
            ("backup-clone", backup_clone_script()),
            ("restore-clone", restore_clone_script()),
            ("backup-upload", backup_upload_script()),
            ("restore-fetch", restore_fetch_script()),
            ("restore-load", restore_load_script()),
            ("initdb-config", INITDB_CONFIG_SH.to_string()),
        ] {
            let out = std::process::Command::new("bash").args(["-n", "-c", &script]).output().expect("bash runs");
            assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
