//! The azcopy command lines jobs run to move an image's bytes ([`toygres_core::CommandTransfer`]).
//!
//! - Upload streams a dump from standard input: `azcopy copy "{url}" --from-to PipeBlob` (no staging copy).
//! - Download streams to standard output: `azcopy copy "{url}" --from-to BlobPipe`.
//! - Workload identity: every copy gets `AZCOPY_AUTO_LOGIN_TYPE=WORKLOAD` and exchanges the pod's
//!   federated token (`AZURE_FEDERATED_TOKEN_FILE`) for an Entra ID token itself. There is **no
//!   separate `azcopy login` step**: on Linux it stores its token in the kernel keyring (`keyctl`),
//!   which the RuntimeDefault seccomp profile (required by Pod Security "restricted") blocks, so the
//!   login exits 1 although the copies would authenticate. Never `azcopy login --identity` either:
//!   that asks the node's IMDS for the VM's managed identity and the copies then fail with 403
//!   AuthorizationPermissionMismatch on AKS.
//! - SAS and account-key (emulator) modes skip the login; the SAS is the URL's query. azcopy reads a
//!   SAS from nowhere but the URL (no environment variable or file), so in these modes the SAS is in
//!   the azcopy child's arguments, visible in the process list of that machine: use them for
//!   development and the emulator only. Workload identity has no secret at all.

use crate::auth::AzureAuth;
use toygres_core::{CommandTransfer, Password};

/// How jobs run azcopy. The defaults suit a Kubernetes job of one or two cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzcopySettings {
    /// The program (default `azcopy`, found on `PATH`).
    pub program: String,
    /// `--block-size-mb`: block size of uploads and ranged reads. A piped upload cannot know its size,
    /// and a block blob holds at most 50,000 blocks: 16 MiB allows dumps up to ~780 GiB.
    pub block_size_mb: u32,
    /// `AZCOPY_CONCURRENCY_VALUE`: parallel HTTP connections (azcopy's default scales with cores).
    pub concurrency: Option<u32>,
    /// `AZCOPY_LOG_LOCATION` and `AZCOPY_JOB_PLAN_LOCATION`: where azcopy writes its logs and job
    /// plans (default `~/.azcopy`); set a writable scratch directory in read-only containers.
    pub work_dir: Option<String>,
}

impl Default for AzcopySettings {
    fn default() -> Self {
        Self { program: "azcopy".into(), block_size_mb: 16, concurrency: None, work_dir: None }
    }
}

impl AzcopySettings {
    /// The transfer of the objects under `base_url` (container URL plus image prefix) with `auth`;
    /// `sas` is the query for SAS and account-key modes.
    pub(crate) fn transfer(&self, base_url: String, auth: &AzureAuth, sas: Option<Password>) -> CommandTransfer {
        let copy = |from_to: &str, output_level: &str| -> Vec<String> {
            let block = self.block_size_mb.to_string();
            let args = ["copy", "{url}", "--from-to", from_to, "--block-size-mb", &block];
            let quiet = ["--output-level", output_level, "--log-level", "ERROR"];
            args.iter().chain(quiet.iter()).map(|s| s.to_string()).collect()
        };
        let mut env = vec![("AZCOPY_DISABLE_SYSLOG".to_string(), "true".to_string())];
        if let Some(concurrency) = self.concurrency {
            env.push(("AZCOPY_CONCURRENCY_VALUE".into(), concurrency.to_string()));
        }
        if let Some(dir) = &self.work_dir {
            env.push(("AZCOPY_LOG_LOCATION".into(), dir.clone()));
            env.push(("AZCOPY_JOB_PLAN_LOCATION".into(), dir.clone()));
        }
        match auth {
            AzureAuth::WorkloadIdentity { client_id, tenant_id, federated_token_file, authority_host } => {
                env.push(("AZCOPY_AUTO_LOGIN_TYPE".into(), "WORKLOAD".into()));
                // Not secrets: this process's identity, for copies run here (the local executor). The
                // Kubernetes executor drops them from its jobs, whose webhook sets their own.
                env.push(("AZURE_CLIENT_ID".into(), client_id.clone()));
                env.push(("AZURE_TENANT_ID".into(), tenant_id.clone()));
                env.push(("AZURE_FEDERATED_TOKEN_FILE".into(), federated_token_file.display().to_string()));
                if let Some(host) = authority_host {
                    env.push(("AZURE_AUTHORITY_HOST".into(), host.clone()));
                }
            }
            AzureAuth::Sas(_) | AzureAuth::AccessKey(_) => {}
        }
        CommandTransfer {
            program: self.program.clone(),
            login: None,
            // `essential` keeps errors and the summary in the job log; downloads write data to
            // stdout, so they print nothing else there.
            upload_from_stdin: copy("PipeBlob", "essential"),
            download_to_stdout: copy("BlobPipe", "quiet"),
            base_url,
            url_query: sas,
            env,
            secret_env: Vec::new(),
        }
    }
}
