//! A real local executor whose `deploy_from_volume` fails the first `failures` calls, transiently
//! (a backend hiccup) or permanently, to test the orchestration's retry policy and cleanup.

use async_trait::async_trait;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use toygres_core::{BackupJobSpec, ClusterExecutor, ConnectionInfo, Error, InstanceSpec, JobRef, Password};
use toygres_core::{ProgressSink, RestoreJobSpec, Result};
use toygres_local::LocalExecutor;

pub struct FlakyDeploy {
    pub inner: LocalExecutor,
    pub failures: u32,
    pub transient: bool,
    pub calls: AtomicU32,
}

impl FlakyDeploy {
    pub fn new(inner: LocalExecutor, failures: u32, transient: bool) -> Arc<Self> {
        Arc::new(Self { inner, failures, transient, calls: AtomicU32::new(0) })
    }
}

#[async_trait]
impl ClusterExecutor for FlakyDeploy {
    async fn start_backup_job(&self, spec: &BackupJobSpec) -> Result<JobRef> {
        self.inner.start_backup_job(spec).await
    }
    async fn start_restore_job(&self, spec: &RestoreJobSpec) -> Result<JobRef> {
        self.inner.start_restore_job(spec).await
    }
    async fn wait_for_job(&self, job: &JobRef, timeout: Duration, progress: Arc<dyn ProgressSink>) -> Result<()> {
        self.inner.wait_for_job(job, timeout, progress).await
    }
    async fn job_logs(&self, job: &JobRef) -> Result<String> {
        self.inner.job_logs(job).await
    }
    async fn delete_job(&self, job: &JobRef) -> Result<()> {
        self.inner.delete_job(job).await
    }
    async fn create_volume(&self, instance: &InstanceSpec, password: &Password) -> Result<()> {
        self.inner.create_volume(instance, password).await
    }
    async fn initialize_empty(&self, instance: &InstanceSpec, password: &Password) -> Result<()> {
        self.inner.initialize_empty(instance, password).await
    }
    async fn deploy_from_volume(&self, instance: &InstanceSpec) -> Result<()> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call <= self.failures {
            return Err(if self.transient {
                Error::backend_msg("flaky executor", format!("deploy attempt {call}: connection reset"))
            } else {
                Error::Corrupt(format!("deploy attempt {call}: the volume is unusable"))
            });
        }
        self.inner.deploy_from_volume(instance).await
    }
    async fn wait_until_ready(&self, instance: &InstanceSpec, timeout: Duration) -> Result<()> {
        self.inner.wait_until_ready(instance, timeout).await
    }
    async fn connection_info(&self, instance: &InstanceSpec) -> Result<ConnectionInfo> {
        self.inner.connection_info(instance).await
    }
    async fn test_connection(
        &self,
        instance: &InstanceSpec,
        connection: &ConnectionInfo,
        password: &Password,
    ) -> Result<()> {
        self.inner.test_connection(instance, connection, password).await
    }
    async fn delete_instance(&self, instance: &InstanceSpec) -> Result<()> {
        self.inner.delete_instance(instance).await
    }
}
