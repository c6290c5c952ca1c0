//! Encrypted images on Kubernetes: how a job gets its image's data key, and what seals and opens
//! the objects.
//!
//! When a job spec carries a data key ([`toygres_core::BackupJobSpec::data_key`],
//! [`toygres_core::RestoreJobSpec::data_key`]):
//! - the job's Secret (the one holding the source password and the transfer's secrets) gets the
//!   key as 64 hex digits under [`DATA_KEY_SECRET_KEY`];
//! - the Secret's key is mounted as the file [`KEY_FILE`] (mode 0440, read-only) into the one
//!   container that moves the image's bytes — the backup's `upload` (which seals) and the
//!   restore's `fetch` (which verifies and opens) — and into no other: the `dump` and `load`
//!   containers, in PostgreSQL images, only ever see plaintext through the pod's FIFOs, and what
//!   `load` gets was authenticated first;
//! - that container's environment says the image is encrypted ([`ENCRYPTED_VAR`]`=1`), where the
//!   key file is ([`KEY_FILE_VAR`], a path, not the key) and which program seals
//!   ([`SEAL_PROGRAM_VAR`], [`crate::K8sConfig::seal_program`]).
//!
//! The key is never in an argument, an environment value, a log line or a manifest other than the
//! Secret's data; a failed job's logs are redacted of every value of its Secret, the key included.
//! The scripts (`templates/seal.sh`) fail closed: an encrypted job whose key file or program is
//! missing stops before it moves a byte. A plaintext image (no data key) is written and restored
//! exactly as before.
//!
//! The program is `toygres-seal`, a binary of this crate (`src/bin/toygres-seal.rs`): `seal` and
//! `open` one object as a stream in the format of [`toygres_core::envelope::object`], the format
//! every executor writes. The toolbox image must contain it ([`crate::K8sConfig::toolbox_image`],
//! `docs/azure-aks.md`).

use crate::manifests::container;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, KeyToPath, SecretVolumeSource, Volume, VolumeMount};
use k8s_openapi::ByteString;
use toygres_core::envelope::DataKey;
use toygres_core::Result;

/// Key of the data key (64 hex digits) in a job's Secret.
pub const DATA_KEY_SECRET_KEY: &str = "data-key";
/// The pod volume of the data key (the Secret's [`DATA_KEY_SECRET_KEY`] only).
pub const KEY_VOLUME: &str = "data-key";
/// Where the key's volume is mounted.
pub const KEY_DIR: &str = "/run/toygres-key";
/// The data key's file in the container that seals or opens.
pub const KEY_FILE: &str = "/run/toygres-key/data-key";
/// Mode of the key file: its owner (root) and the pod's group (fsGroup, the jobs' user) may read it.
pub const KEY_FILE_MODE: i32 = 0o440;
/// `1` when the job's image is encrypted.
pub const ENCRYPTED_VAR: &str = "TOYGRES_ENCRYPTED";
/// Path of the data key's file.
pub const KEY_FILE_VAR: &str = "TOYGRES_DATA_KEY_FILE";
/// The program that seals and opens (`toygres-seal`, or a path to it).
pub const SEAL_PROGRAM_VAR: &str = "TOYGRES_SEAL_PROGRAM";

fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

/// The environment of a container that seals or opens the objects of an encrypted image whose key
/// is the file `key_file`, with the program `seal_program`. No value is secret.
///
/// ```
/// let env = toygres_k8s::sealing::env("toygres-seal", toygres_k8s::sealing::KEY_FILE);
/// let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
/// assert_eq!(names, ["TOYGRES_ENCRYPTED", "TOYGRES_DATA_KEY_FILE", "TOYGRES_SEAL_PROGRAM"]);
/// ```
pub fn env(seal_program: &str, key_file: &str) -> Vec<EnvVar> {
    vec![plain(ENCRYPTED_VAR, "1"), plain(KEY_FILE_VAR, key_file), plain(SEAL_PROGRAM_VAR, seal_program)]
}

/// The job Secret's entry holding `key`.
pub fn secret_entry(key: &DataKey) -> (String, ByteString) {
    (DATA_KEY_SECRET_KEY.to_string(), ByteString(key.expose_hex().into_bytes()))
}

/// Mounts the data key of Secret `secret` into container `name` of `job` as [`KEY_FILE`] and
/// gives it the environment of [`env`].
pub(crate) fn mount_key(job: &mut Job, name: &str, secret: &str, seal_program: &str) -> Result<()> {
    let target = container(job, name)?;
    target.env.get_or_insert_with(Vec::new).extend(env(seal_program, KEY_FILE));
    target.volume_mounts.get_or_insert_with(Vec::new).push(VolumeMount {
        name: KEY_VOLUME.into(),
        mount_path: KEY_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    });
    let pod = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()).expect("container found in the pod spec");
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: KEY_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            items: Some(vec![KeyToPath {
                key: DATA_KEY_SECRET_KEY.into(),
                path: DATA_KEY_SECRET_KEY.into(),
                ..Default::default()
            }]),
            default_mode: Some(KEY_FILE_MODE),
            optional: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    });
    Ok(())
}
