//! Backup and restore Jobs: start, wait, logs, delete.

use crate::api::{self, status_code};
use crate::config::K8sConfig;
use crate::diagnose::events::{refusal_advice, EventWatch, Patience, Problem};
use crate::executor::K8sExecutor;
use crate::names::{self, CONTROLLER_UID_LABEL, IMAGE_LABEL, INSTANCE_LABEL};
use crate::progress::JobProgress;
use crate::transfer::{for_workload_identity, job_transfer, JobTransfer};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{LogParams, Patch, PatchParams};
use kube::ResourceExt;
use std::sync::Arc;
use std::time::Duration;
use toygres_core::error::redact;
use toygres_core::{
    BackupJobSpec, Error, ImageFormat, InstanceId, JobRef, ProgressSink, RestoreJobSpec, Result, Subject,
};

/// Field manager of the server-side applied job Secrets.
const FIELD_MANAGER: &str = "toygres";

/// Log lines attached to a job's timeout.
const TIMEOUT_LOG_LINES: usize = 20;

/// Since when the same kind of problem (of one [`Patience`]) has kept a pod from running.
#[derive(Default)]
pub(crate) struct Stuck {
    since: Option<(tokio::time::Instant, Patience)>,
}

impl Stuck {
    /// Records this poll's `problem`; returns it once problems have lasted `grace` without a break.
    pub(crate) fn check(&mut self, problem: Option<String>, grace: Duration) -> Option<String> {
        self.bear_for(problem.map(Problem::stuck), |_| grace).map(|(p, _)| p.text)
    }

    /// Records this poll's `problem`; returns it with its grace once problems of its [`Patience`]
    /// have lasted that long without a break: none for a refusal, [`K8sConfig::stuck_grace`] or
    /// [`K8sConfig::transient_grace`]. A change of patience starts the count again (a node the
    /// autoscaler added may then have an image that does not pull).
    pub(crate) fn bear(&mut self, problem: Option<Problem>, config: &K8sConfig) -> Option<(Problem, Duration)> {
        self.bear_for(problem, |patience| match patience {
            Patience::Refused => Duration::ZERO,
            Patience::Stuck => config.stuck_grace,
            Patience::Transient => config.transient_grace,
        })
    }

    fn bear_for(
        &mut self,
        problem: Option<Problem>,
        grace: impl Fn(Patience) -> Duration,
    ) -> Option<(Problem, Duration)> {
        let Some(problem) = problem else {
            self.since = None;
            return None;
        };
        let now = tokio::time::Instant::now();
        let since = match self.since {
            Some((since, patience)) if patience == problem.patience => since,
            _ => {
                self.since = Some((now, problem.patience));
                now
            }
        };
        let grace = grace(problem.patience);
        (now - since >= grace).then_some((problem, grace))
    }
}

/// Where a Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Not finished.
    Running,
    /// Completed successfully.
    Succeeded,
    /// Failed, with the reason from its condition.
    Failed(String),
}

/// Reads `job`'s status.
pub fn job_outcome(job: &Job) -> JobOutcome {
    let status = job.status.as_ref();
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    if let Some(failed) = conditions.iter().find(|c| c.type_ == "Failed" && c.status == "True") {
        let reason = failed.reason.as_deref().unwrap_or("Failed");
        return JobOutcome::Failed(match failed.message.as_deref() {
            Some(message) => format!("{reason}: {message}"),
            None => reason.to_string(),
        });
    }
    let complete = conditions.iter().any(|c| c.type_ == "Complete" && c.status == "True");
    if complete || status.and_then(|s| s.succeeded).unwrap_or(0) > 0 {
        JobOutcome::Succeeded
    } else {
        JobOutcome::Running
    }
}

impl K8sExecutor {
    /// Applies the job's Secret, if it has one (refreshing short-lived credentials on a re-run),
    /// then creates the Job.
    pub(crate) async fn launch(&self, secret: Option<&Secret>, job: &Job, owner_key: &str, owner: &str) -> Result<()> {
        let name = job.name_any();
        if let Some(secret) = secret {
            self.api::<Secret>()
                .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(secret))
                .await
                .map_err(|e| api::error(&format!("applying Secret {name}"), e))?;
        }
        api::create(&self.api::<Job>(), job, |j| names::owned_by(j.metadata.labels.as_ref(), owner_key, owner)).await?;
        Ok(())
    }

    /// The blob store's transfer as a job's environment; with workload identity, the webhook sets
    /// the identity variables from the job's service account.
    fn job_transfer(&self, location: &toygres_core::ImageLocation, job: &str) -> Result<JobTransfer> {
        let mut transfer = self.blobs.transfer(location);
        if self.config.workload_identity {
            transfer = for_workload_identity(transfer);
        }
        job_transfer(transfer, job, &self.blobs.describe())
    }

    pub(crate) async fn start_backup(&self, spec: &BackupJobSpec) -> Result<JobRef> {
        if spec.from_image.is_some() {
            // Never a backup of the running source in its place: that is not the clone's data.
            return Err(Error::UnsupportedFormat {
                format: ImageFormat::Physical,
                reason: "exporting a clone image (a VolumeSnapshot) is not built on Kubernetes: restore the clone \
                         into an instance and take a physical image of it"
                    .into(),
            });
        }
        let job = JobRef::backup(spec.image_id);
        let transfer = self.job_transfer(&spec.location, &job.name)?;
        let manifests = self.manifests();
        let secret = manifests.backup_secret(spec, &transfer)?;
        let object = match spec.format {
            ImageFormat::Clone => {
                crate::clone::snapshot_class(&self.config)?;
                manifests.clone_backup_job(spec, &transfer, &self.clone_source(&spec.source).await?)?
            }
            ImageFormat::Logical | ImageFormat::Physical => manifests.backup_job(spec, &transfer)?,
        };
        self.launch(Some(&secret), &object, IMAGE_LABEL, &spec.image_id.to_string()).await?;
        Ok(job)
    }

    pub(crate) async fn start_restore(&self, spec: &RestoreJobSpec) -> Result<JobRef> {
        let job = JobRef::restore(spec.instance.id);
        let transfer = self.job_transfer(&spec.location, &job.name)?;
        let manifests = self.manifests();
        let secret = manifests.restore_secret(spec, &transfer)?;
        let object = manifests.restore_job(spec, &transfer)?;
        // An unreadable manifest changes nothing here: the job reports it.
        let manifest = self.verified_manifest(spec).await;
        if let Some(manifest) = &manifest {
            crate::physical::check_restore(&self.config, spec, manifest)?;
        }
        if self.restored_and_deployed(spec.instance.id).await? {
            // Resumed after the deploy (a control-plane restart): the server holds the volume,
            // and a Job mounting it would wait on its disk (Multi-Attach) for nothing.
            tracing::info!(job = %job.name, "the instance is deployed: its volume holds the image, no restore job");
            return Ok(job);
        }
        if let Some(manifest) = manifest {
            if manifest.format == ImageFormat::Clone {
                return self.start_clone_restore(spec, &manifest).await;
            }
            self.size_volume(spec, &manifest).await?;
        }
        self.launch(Some(&secret), &object, INSTANCE_LABEL, &spec.instance.id.to_string()).await?;
        Ok(job)
    }

    pub(crate) async fn wait_job(&self, job: &JobRef, timeout: Duration, sink: Arc<dyn ProgressSink>) -> Result<()> {
        let jobs = self.api::<Job>();
        let mut stuck = Stuck::default();
        let mut watch = EventWatch::default();
        let mut progress = JobProgress::new(sink);
        let mut last_seen = String::from("not read yet");
        let poll = async {
            loop {
                match jobs.get(&job.name).await {
                    Ok(current) => match job_outcome(&current) {
                        // A clone image's Job is followed by its snapshot, within the same timeout.
                        JobOutcome::Succeeded => return self.complete_clone(job, &current).await,
                        JobOutcome::Failed(reason) => return Err(self.failed(job, reason).await),
                        JobOutcome::Running => {
                            let uid = current.metadata.uid.clone().unwrap_or_default();
                            let pods = if uid.is_empty() { Vec::new() } else { self.job_pods(&uid).await };
                            progress.poll(self, job, &pods).await;
                            let problem = self.job_problem(&mut watch, &current, &pods).await;
                            last_seen = problem.as_ref().map_or_else(|| "running".into(), |p| p.text.clone());
                            if let Some((problem, grace)) = stuck.bear(problem, &self.config) {
                                let reason = match problem.patience {
                                    Patience::Refused => {
                                        let advice = refusal_advice(&problem.text, &self.config.namespace);
                                        format!("refused at admission: {}; {advice}", problem.text)
                                    }
                                    _ => format!("stuck for {grace:?}: {}", problem.text),
                                };
                                return Err(self.failed(job, reason).await);
                            }
                        }
                    },
                    Err(e) if status_code(&e) == Some(404) => {
                        if let Subject::Instance(id) = job.subject {
                            if self.restored_and_deployed(id).await? {
                                return Ok(());
                            }
                        }
                        return Err(Error::backend_msg(
                            api::BACKEND,
                            format!("job {} no longer exists (deleted while waiting); run the step again", job.name),
                        ));
                    }
                    Err(e) => tracing::warn!(job = %job.name, error = %e, "reading the job failed; polling again"),
                }
                tokio::time::sleep(self.config.poll_interval).await;
            }
        };
        match tokio::time::timeout(timeout, poll).await {
            Ok(result) => result,
            Err(_) => {
                let logs = self.logs_of(job).await.unwrap_or_else(|e| format!("(no logs: {e})"));
                let tail: Vec<&str> = logs.lines().rev().take(TIMEOUT_LOG_LINES).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                let step = format!("job {} (last seen: {last_seen}; last log lines:\n{})", job.name, tail.join("\n"));
                Err(Error::Timeout { step, after: timeout })
            }
        }
    }

    /// Whether instance `id` is deployed (its StatefulSet, ours, exists). The pipeline deploys only
    /// after its restore Job succeeded, so its volume then holds the image: a restore resumed
    /// after the deploy neither runs nor waits for a Job again.
    pub(crate) async fn restored_and_deployed(&self, id: InstanceId) -> Result<bool> {
        let name = format!("pg-{id}");
        let set = self.api::<StatefulSet>().get_opt(&name).await;
        let set = set.map_err(|e| api::error(&format!("reading StatefulSet {name}"), e))?;
        let id = id.to_string();
        Ok(set.is_some_and(|s| names::owned_by(s.metadata.labels.as_ref(), INSTANCE_LABEL, &id)))
    }

    /// The error of a failed job, with its logs.
    async fn failed(&self, job: &JobRef, reason: String) -> Error {
        let logs = self.logs_of(job).await.unwrap_or_else(|e| format!("(no logs: {e})"));
        Error::JobFailed { job: job.name.clone(), reason, logs }
    }

    /// Values of the Secrets a job's pods could see, to redact from its logs.
    async fn job_secrets(&self, job: &JobRef) -> Result<Vec<String>> {
        let mut names = vec![job.name.clone()];
        if let Subject::Instance(id) = job.subject {
            names.push(format!("pg-{id}"));
        }
        let secrets = self.api::<Secret>();
        let mut values = Vec::new();
        for name in names {
            let secret = secrets.get_opt(&name).await.map_err(|e| api::error(&format!("reading Secret {name}"), e))?;
            for value in secret.and_then(|s| s.data).unwrap_or_default().into_values() {
                values.push(String::from_utf8_lossy(&value.0).into_owned());
            }
        }
        Ok(values)
    }

    pub(crate) async fn logs_of(&self, job: &JobRef) -> Result<String> {
        let pods = self.api::<Pod>();
        // Pods by the Job's uid, not its name: an older Job of the same name (deleted in the
        // background, then created again by a re-run) may still have pods.
        let current = self
            .api::<Job>()
            .get_opt(&job.name)
            .await
            .map_err(|e| api::error(&format!("reading job {}", job.name), e))?;
        let Some(uid) = current.and_then(|j| j.metadata.uid) else {
            return Ok(format!("(job {} no longer exists; its pods' logs are gone)", job.name));
        };
        let mut found = api::list(&pods, &format!("{CONTROLLER_UID_LABEL}={uid}")).await?;
        if found.is_empty() {
            return Ok(format!(
                "(job {} has no pods; see `kubectl describe job -n {} {}` for scheduling or quota errors)",
                job.name, self.config.namespace, job.name
            ));
        }
        found.sort_by_key(|p| p.creation_timestamp().map(|t| t.0));
        let mut out = String::new();
        for pod in &found {
            let spec = pod.spec.as_ref();
            let init = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default();
            let containers = init.iter().chain(spec.map(|s| s.containers.as_slice()).unwrap_or_default());
            for container in containers {
                let params = LogParams {
                    container: Some(container.name.clone()),
                    tail_lines: Some(self.config.log_tail_lines),
                    ..LogParams::default()
                };
                let text = match pods.logs(&pod.name_any(), &params).await {
                    Ok(text) => text,
                    Err(e) => format!("(no log: {e})\n"),
                };
                out.push_str(&format!("--- pod {} container {} ---\n{text}", pod.name_any(), container.name));
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        for secret in self.job_secrets(job).await? {
            out = redact(&out, &secret);
        }
        Ok(out)
    }

    pub(crate) async fn remove_job(&self, job: &JobRef) -> Result<()> {
        api::delete(&self.api::<Job>(), &job.name).await?;
        api::delete(&self.api::<Secret>(), &job.name).await
    }
}
