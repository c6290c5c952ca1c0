//! Turns a [`Transfer`] from the `BlobStore` into a job's environment and the data of its Secret.
//!
//! Plain settings become `TOYGRES_TRANSFER_*` variables (argument lists shell-quoted, read back by
//! `templates/transfer.sh`); the URL query (a SAS) and every secret variable go into the job's Secret
//! and reach the container through `secretKeyRef`, never as literals in the Job.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use k8s_openapi::ByteString;
use std::collections::BTreeMap;
use toygres_core::{CommandTransfer, Error, Result, Transfer};

/// Secret key (and variable name) of the URL query.
pub const URL_QUERY_KEY: &str = "TOYGRES_TRANSFER_URL_QUERY";

/// What a job needs to run a transfer. Not `Debug`: it holds secrets.
pub struct JobTransfer {
    /// Variables of the container(s) that move bytes.
    pub env: Vec<EnvVar>,
    /// Data of the job's Secret (the URL query and the secret variables).
    pub secret_data: BTreeMap<String, ByteString>,
}

/// Quotes `args` for bash: each argument single-quoted, joined by spaces.
///
/// ```
/// assert_eq!(toygres_k8s::transfer::shell_quote(&["copy".into(), "it's".into()]), "'copy' 'it'\\''s'");
/// ```
pub fn shell_quote(args: &[String]) -> String {
    args.iter().map(|a| format!("'{}'", a.replace('\'', r"'\''"))).collect::<Vec<_>>().join(" ")
}

fn plain(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

/// A variable read from key `key` of Secret `secret`.
pub fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: None }),
            ..Default::default()
        }),
    }
}

fn check_env_name(name: &str) -> Result<()> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid || name.starts_with("TOYGRES_") || name.starts_with("PG") {
        return Err(Error::backend_msg(
            "kubernetes executor",
            format!(
                "the blob store's transfer sets environment variable {name:?}, which a job cannot take \
                 (names must be [A-Za-z_][A-Za-z0-9_]* and not start with TOYGRES_ or PG); fix the blob store"
            ),
        ));
    }
    Ok(())
}

/// Variables the AKS workload-identity webhook sets from the pod's service account. The webhook only
/// adds variables a container does not set already, so a job that inherited the control plane's
/// values would authenticate as the control plane's identity (AADSTS70021 when the job's service
/// account is federated with another one).
pub const WORKLOAD_IDENTITY_VARIABLES: [&str; 4] =
    ["AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"];

/// `transfer` without [`WORKLOAD_IDENTITY_VARIABLES`], for pods the webhook mutates.
pub fn for_workload_identity(transfer: Transfer) -> Transfer {
    match transfer {
        Transfer::Command(mut c) => {
            c.env.retain(|(name, _)| !WORKLOAD_IDENTITY_VARIABLES.contains(&name.as_str()));
            c.secret_env.retain(|(name, _)| !WORKLOAD_IDENTITY_VARIABLES.contains(&name.as_str()));
            Transfer::Command(c)
        }
        other => other,
    }
}

/// The job environment of `transfer`, whose secrets live in Secret `secret_name`.
/// Only [`Transfer::Command`] can run in a job; an in-process transfer is refused.
pub fn job_transfer(transfer: Transfer, secret_name: &str, store: &str) -> Result<JobTransfer> {
    let command: CommandTransfer = match transfer {
        Transfer::Command(c) => c,
        Transfer::ObjectStore { .. } => {
            return Err(Error::backend_msg(
                "kubernetes executor",
                format!(
                    "{store} only offers in-process transfers, which a Kubernetes job cannot run; use a blob \
                     store with a command transfer (toygres-azure) with the Kubernetes executor"
                ),
            ))
        }
    };
    let mut env = vec![
        plain("TOYGRES_TRANSFER_PROGRAM", &command.program),
        plain("TOYGRES_TRANSFER_LOGIN", command.login.as_deref().map(shell_quote).unwrap_or_default()),
        plain("TOYGRES_TRANSFER_UPLOAD", shell_quote(&command.upload_from_stdin)),
        plain("TOYGRES_TRANSFER_DOWNLOAD", shell_quote(&command.download_to_stdout)),
        plain("TOYGRES_TRANSFER_BASE_URL", &command.base_url),
    ];
    let mut secret_data = BTreeMap::new();
    if let Some(query) = &command.url_query {
        env.push(from_secret(URL_QUERY_KEY, secret_name, URL_QUERY_KEY));
        secret_data.insert(URL_QUERY_KEY.to_string(), ByteString(query.expose().as_bytes().to_vec()));
    }
    for (name, value) in &command.env {
        check_env_name(name)?;
        env.push(plain(name, value));
    }
    for (name, value) in &command.secret_env {
        check_env_name(name)?;
        env.push(from_secret(name, secret_name, name));
        secret_data.insert(name.clone(), ByteString(value.expose().as_bytes().to_vec()));
    }
    Ok(JobTransfer { env, secret_data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use toygres_core::Password;

    fn command() -> CommandTransfer {
        CommandTransfer {
            program: "azcopy".into(),
            login: Some(vec!["login".into(), "--login-type=workload".into()]),
            upload_from_stdin: vec!["copy".into(), "{url}".into(), "--from-to".into(), "PipeBlob".into()],
            download_to_stdout: vec!["copy".into(), "{url}".into(), "--from-to".into(), "BlobPipe".into()],
            base_url: "https://acct.blob.core.windows.net/images/images/x".into(),
            url_query: Some(Password::new("sv=2024&sig=SAS-SECRET")),
            env: vec![("AZCOPY_LOG_LOCATION".into(), "/tmp".into())],
            secret_env: vec![("AZCOPY_EXTRA".into(), Password::new("OTHER-SECRET"))],
        }
    }

    #[test]
    fn secrets_go_to_the_secret_and_are_referenced() {
        let t = job_transfer(Transfer::Command(command()), "backup-x", "azure").unwrap();
        let env = serde_json::to_string(&t.env).unwrap();
        assert!(!env.contains("SAS-SECRET") && !env.contains("OTHER-SECRET"), "{env}");
        assert!(env.contains(r#""secretKeyRef":{"key":"TOYGRES_TRANSFER_URL_QUERY","name":"backup-x"}"#), "{env}");
        assert!(env.contains("'login' '--login-type=workload'"), "{env}");
        assert_eq!(t.secret_data[URL_QUERY_KEY].0, b"sv=2024&sig=SAS-SECRET");
        assert_eq!(t.secret_data["AZCOPY_EXTRA"].0, b"OTHER-SECRET");
    }

    #[test]
    fn quoted_arguments_survive_bash() {
        let args = vec!["a b".to_string(), "it's".into(), "$HOME".into(), "{url}".into(), "".into()];
        // As templates/transfer.sh reads them: from the environment, through eval.
        let script = r#"eval "x=(${QUOTED})"; printf '<%s>' "${x[@]}""#;
        let mut bash = std::process::Command::new("bash");
        let out = bash.args(["-c", script]).env("QUOTED", shell_quote(&args)).output().unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "<a b><it's><$HOME><{url}><>");
    }

    /// Runs `script` after `templates/transfer.sh` with `program` uploading with `upload`; its stdout.
    fn transfer_sh(program: &str, upload: &[&str], script: &str) -> String {
        let tmp = tempfile::tempdir().unwrap();
        let upload: Vec<String> = upload.iter().map(|a| a.to_string()).collect();
        let out = std::process::Command::new("bash")
            .args(["-c", &format!("set -euo pipefail\n{}\n{script}", crate::render::TRANSFER_SH)])
            .env("TMPDIR", tmp.path())
            .env("TOYGRES_TRANSFER_PROGRAM", program)
            .env("TOYGRES_TRANSFER_BASE_URL", "https://acct.blob.core.windows.net/images/x")
            .env("TOYGRES_TRANSFER_UPLOAD", shell_quote(&upload))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn the_block_size_fits_the_expected_size_in_50000_blocks() {
        let cases = [
            (0, 16),
            (GIB, 16),
            // 16 MiB blocks hold 781.25 GiB: one byte more needs 17 MiB.
            (50_000 * 16 * MIB, 16),
            (50_000 * 16 * MIB + 1, 17),
            (10 << 40, 210),
            // Azure's largest block blob: 50,000 blocks of 4000 MiB (about 190.7 TiB).
            (50_000 * 4000 * MIB, 4000),
            (1 << 50, 4000),
        ];
        for (expected, mb) in cases {
            assert_eq!(transfer_sh("azcopy", &[], &format!("block_size_mb {expected}")), mb.to_string(), "{expected}");
            if mb < 4000 {
                assert!(mb * MIB * 50_000 >= expected && (mb == 16 || (mb - 1) * MIB * 50_000 < expected));
            }
        }
    }

    #[test]
    fn uploads_get_a_block_size_raised_for_their_expected_size_never_lowered() {
        let args = |program: &str, upload: &[&str], expected: u64| -> Vec<String> {
            let out = transfer_sh(program, upload, &format!("upload_args {expected} | tr '\\0' '\\n'"));
            out.lines().map(str::to_string).collect()
        };
        let azcopy = ["copy", "{url}", "--from-to", "PipeBlob", "--block-size-mb", "16", "--output-level", "essential"];
        // A 2 TiB bound (a 1 TiB source): 42 MiB blocks; a small one keeps the configured 16 MiB.
        let raised = args("azcopy", &azcopy, 2 << 40);
        assert_eq!(raised[4..6], ["--block-size-mb", "42"]);
        assert_eq!(raised.len(), azcopy.len());
        assert_eq!(args("azcopy", &azcopy, GIB), azcopy);
        // A configured size above what is needed stays; the `=` form is read too.
        let big = ["copy", "{url}", "--block-size-mb", "100"];
        assert_eq!(args("azcopy", &big, GIB), big);
        assert_eq!(args("/usr/bin/azcopy", &["copy", "--block-size-mb=8"], 2 << 40), ["copy", "--block-size-mb=42"]);
        // azcopy without the option gets it (its own default, 8 MiB, would cap a blob at 390 GiB).
        assert_eq!(args("/opt/azcopy", &["copy", "{url}"], GIB), ["copy", "{url}", "--block-size-mb", "16"]);
        // Another copy program is left alone.
        assert_eq!(args("rclone", &["rcat", "{url}"], 2 << 40), ["rcat", "{url}"]);
    }

    #[test]
    fn refuses_bad_variables_and_in_process_transfers() {
        let mut c = command();
        c.env.push(("PGPASSWORD".into(), "x".into()));
        assert!(job_transfer(Transfer::Command(c), "s", "azure").is_err());
        let store = std::sync::Arc::new(object_store::memory::InMemory::new());
        let t = Transfer::ObjectStore { store, prefix: "images/x".into() };
        let err = job_transfer(t, "s", "memory").err().unwrap().to_string();
        assert!(err.contains("toygres-azure"), "{err}");
    }
}
