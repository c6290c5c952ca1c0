//! The connection test from inside the cluster ([`crate::ConnectionTest::InCluster`]): a one-pod Job
//! of the namespace runs `SELECT 1` over TLS against the instance's address, for endpoints the
//! control plane cannot reach (a ClusterIP Service while it runs outside the cluster, load-balancer
//! source ranges that admit only the clients' networks).
//!
//! The Job `probe-<digest of the address>` is created first; its Secret (the password, mounted as a
//! file) is applied after it, owned by it, so deleting the Job (the executor after each test, or
//! Kubernetes' TTL after a crash) deletes the Secret too. A re-run after a crash finds the earlier
//! probe and takes its outcome.

use crate::api;
use crate::diagnose::events::EventWatch;
use crate::executor::K8sExecutor;
use crate::jobs::{job_outcome, JobOutcome, Stuck};
use crate::manifests::{container_security, Manifests, PASSWORD_KEY};
use crate::names::{self, COMPONENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL};
use crate::render::{self, render};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::ByteString;
use kube::api::{LogParams, Patch, PatchParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use toygres_core::error::redact;
use toygres_core::manifest::sha256_hex;
use toygres_core::{ConnectionInfo, Error, ImageType, Password, Result};

/// `toygres.io/component` of the probe Job, its pod and its Secret (what a NetworkPolicy admits).
pub const PROBE_COMPONENT: &str = "probe";

/// How long a probe may take beyond its connect timeout (scheduling, pulling the image): with the
/// default 30 s connect timeout, within the pipeline's 120 s per attempt.
const PROBE_SLACK: Duration = Duration::from_secs(60);

/// The probe Job's name for `connection`: `probe-` and 16 hex digits of a digest of where it
/// connects (host, port, user, database).
pub fn probe_name(connection: &ConnectionInfo) -> String {
    let host = connection.dns_name.as_deref().unwrap_or(&connection.host);
    let target = format!("{host}:{}/{}@{}", connection.port, connection.database, connection.user);
    let digest = sha256_hex(target.as_bytes());
    format!("probe-{}", &digest.trim_start_matches("sha256:")[..16])
}

fn probe_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (COMPONENT_LABEL.to_string(), PROBE_COMPONENT.to_string()),
    ])
}

impl Manifests<'_> {
    /// The probe Job testing `connection` (see the module docs): the stock PostgreSQL image's
    /// `psql`, `sslmode=require`, restricted, a small fixed size.
    pub fn probe_job(&self, connection: &ConnectionInfo) -> Result<Job> {
        let config = self.config();
        let host = connection.dns_name.as_deref().unwrap_or(&connection.host);
        let mut values = self.meta(&probe_name(connection), &probe_labels()).to_vec();
        let deadline = config.connect_timeout + PROBE_SLACK;
        let small = json!({"requests": {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "16Mi"},
                           "limits": {"memory": "64Mi", "ephemeral-storage": "16Mi"}});
        values.extend([
            ("deadline_seconds", json!(deadline.as_secs())),
            ("postgres_uid", json!(config.postgres_uid)),
            ("postgres_image", json!(config.postgres_images.image(ImageType::Stock, None))),
            ("resources", small),
            ("container_security", container_security()),
            ("script", json!(render::PROBE_SH)),
            ("host", json!(host)),
            ("port", json!(connection.port.to_string())),
            ("user", json!(connection.user)),
            ("database", json!(connection.database)),
            ("connect_timeout", json!(config.connect_timeout.as_secs().max(2).to_string())),
        ]);
        render(render::PROBE_JOB, &values)
    }

    /// The probe's Secret: `password`, owned by the probe Job `job` (its uid `uid`).
    pub fn probe_secret(&self, job: &str, uid: &str, password: &Password) -> Result<Secret> {
        let data = BTreeMap::from([(PASSWORD_KEY.to_string(), ByteString(password.expose().as_bytes().to_vec()))]);
        let mut secret = self.secret(job, &probe_labels(), data)?;
        secret.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: job.into(),
            uid: uid.into(),
            ..OwnerReference::default()
        }]);
        Ok(secret)
    }
}

impl K8sExecutor {
    /// One connection test from a pod of the namespace (see the module docs). Its failure is the
    /// probe's log (psql's error), the password redacted.
    pub(crate) async fn probe_connection(&self, connection: &ConnectionInfo, password: &Password) -> Result<()> {
        let manifests = self.manifests();
        let job = manifests.probe_job(connection)?;
        let name = probe_name(connection);
        let owned = |j: &Job| names::owned_by(j.metadata.labels.as_ref(), COMPONENT_LABEL, PROBE_COMPONENT);
        let mut created = api::create(&self.api::<Job>(), &job, owned).await?;
        if job_outcome(&created) != JobOutcome::Running {
            // An earlier attempt's probe (its test cancelled, or a crash): its outcome is stale.
            self.remove_probe(&name).await?;
            created = api::create(&self.api::<Job>(), &job, owned).await?;
        }
        // Deleted however this test ends, cancelled by the pipeline's per-attempt timeout included.
        let mut cleanup = ProbeCleanup { executor: self.clone(), name: name.clone(), armed: true };
        let uid = created.metadata.uid.clone().unwrap_or_default();
        let secret = manifests.probe_secret(&name, &uid, password)?;
        self.api::<Secret>()
            .patch(&name, &PatchParams::apply("toygres").force(), &Patch::Apply(&secret))
            .await
            .map_err(|e| api::error(&format!("applying Secret {name}"), e))?;
        let outcome = self.await_probe(&name, &uid, connection.port, password).await;
        cleanup.armed = false;
        if let Err(e) = api::delete(&self.api::<Job>(), &name).await {
            tracing::warn!(job = %name, error = %e, "could not delete the connection probe; its TTL removes it");
        }
        outcome
    }

    /// Deletes the probe Job `name` (its Secret goes with it: owner reference) and waits until it
    /// is gone, so that one of the same name can be created.
    async fn remove_probe(&self, name: &str) -> Result<()> {
        api::delete(&self.api::<Job>(), name).await?;
        let deadline = tokio::time::Instant::now() + PROBE_SLACK;
        while self.api::<Job>().get_opt(name).await.map_err(|e| api::error(&format!("reading {name}"), e))?.is_some() {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::backend_msg(
                    api::BACKEND,
                    format!("the earlier connection probe {name} is still being deleted; retry"),
                ));
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
        Ok(())
    }

    async fn await_probe(&self, name: &str, uid: &str, port: u16, password: &Password) -> Result<()> {
        let limit = self.config.connect_timeout + PROBE_SLACK;
        let (mut stuck, mut watch) = (Stuck::default(), EventWatch::default());
        let poll = async {
            loop {
                let job = match self.api::<Job>().get(name).await {
                    Ok(job) => job,
                    Err(e) if api::status_code(&e) == Some(404) => return Err(format!("Job {name} was deleted")),
                    Err(e) => {
                        tracing::warn!(job = %name, error = %e, "reading the probe failed; polling again");
                        tokio::time::sleep(self.config.poll_interval).await;
                        continue;
                    }
                };
                let reason = match job_outcome(&job) {
                    JobOutcome::Succeeded => return Ok(()),
                    JobOutcome::Failed(reason) => reason,
                    JobOutcome::Running => {
                        let pods = self.job_pods(uid).await;
                        let problem = self.job_problem(&mut watch, &job, &pods).await;
                        match stuck.bear(problem, &self.config) {
                            Some((problem, _)) => problem.text,
                            None => {
                                tokio::time::sleep(self.config.poll_interval).await;
                                continue;
                            }
                        }
                    }
                };
                return Err(reason);
            }
        };
        let reason = match tokio::time::timeout(limit, poll).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(reason)) => reason,
            Err(_) => format!("no answer within {limit:?}"),
        };
        let log = redact(&self.probe_log(uid).await, password.expose());
        Err(Error::backend_msg(
            api::BACKEND,
            format!(
                "the connection test from inside the cluster (Job {name}) failed: {reason}; port {port}, \
                 sslmode=require. Check the instance's Service, its NetworkPolicy and TLS. Its log:\n{log}"
            ),
        ))
    }

    /// The probe pod's log (of the Job with `uid`).
    async fn probe_log(&self, uid: &str) -> String {
        let Some(pod) = self.job_pods(uid).await.into_iter().next() else { return "(no pod)".into() };
        let name = pod.metadata.name.unwrap_or_default();
        let params = LogParams { container: Some("probe".into()), tail_lines: Some(20), ..LogParams::default() };
        self.api::<Pod>().logs(&name, &params).await.unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

/// Deletes the probe Job when the test's future is dropped before it could (cancelled by the
/// pipeline's per-attempt timeout, or an error): in a task of its own, since a drop cannot wait. A failed delete is left to the Job's TTL.
struct ProbeCleanup {
    executor: K8sExecutor,
    name: String,
    /// Cleared once the test deleted the Job itself.
    armed: bool,
}

impl Drop for ProbeCleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (executor, name) = (self.executor.clone(), std::mem::take(&mut self.name));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            if let Err(e) = api::delete(&executor.api::<Job>(), &name).await {
                tracing::warn!(job = %name, error = %e, "could not delete the connection probe; its TTL removes it");
            }
        });
    }
}
