//! The harness an executor's test implements, and what its backend can show.

use crate::{BlobStore, ClusterExecutor, InstanceId, InstanceSpec, JobRef, Password};
use async_trait::async_trait;
use std::sync::Arc;

/// Whether a backend can show something, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// It can: the checks assert it.
    Yes,
    /// It cannot, for this reason: the checks that need it print the reason and skip that part.
    No(&'static str),
}

impl Support {
    /// Whether it is supported; prints `check: skipped <what>: <reason>` when it is not.
    pub fn check(&self, check: &str, what: &str) -> bool {
        match self {
            Support::Yes => true,
            Support::No(reason) => {
                eprintln!("executor conformance: {check}: skipped {what}: {reason}");
                false
            }
        }
    }
}

/// What the backend behind a harness can show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// `test_connection` reaches a real PostgreSQL server of the instance.
    pub connections: Support,
    /// Waiting on a backup or restore job emits [`crate::EventKind::Bytes`] events.
    pub byte_progress: Support,
    /// [`ClusterExecutor::list_instances`] lists the instances the executor holds resources for
    /// (otherwise only [`ExecutorHarness::resources_of`] tells what is left of an instance).
    pub instance_listing: Support,
}

impl Capabilities {
    /// Everything supported (a real executor with real servers).
    pub fn full() -> Self {
        Self { connections: Support::Yes, byte_progress: Support::Yes, instance_listing: Support::Yes }
    }
}

/// What the suite needs from the test of one executor.
#[async_trait]
pub trait ExecutorHarness: Send + Sync {
    /// The executor under test.
    fn executor(&self) -> Arc<dyn ClusterExecutor>;

    /// The blob store its jobs write images to and read them from.
    fn blobs(&self) -> Arc<dyn BlobStore>;

    /// A running instance of this executor that backup jobs can dump.
    fn source(&self) -> InstanceSpec;

    /// The source's superuser password (the suite's restored instances get it too).
    fn source_password(&self) -> Password;

    /// What the backend can show; the checks skip (and print) what it cannot.
    fn capabilities(&self) -> Capabilities;

    /// A new instance for a check: a fresh id, of the source's image type and version.
    fn new_instance(&self) -> InstanceSpec {
        let source = self.source();
        let id = InstanceId::new();
        InstanceSpec {
            id,
            name: format!("suite-{}", id.short()),
            image_type: source.image_type,
            pg_version: source.pg_version,
            dns_label: None,
        }
    }

    /// Lets `job` run to its end where nothing runs jobs (a fake API server): the suite calls it
    /// after starting a job it then waits for, never for a job it cancels. A real executor's jobs
    /// run by themselves: the default does nothing.
    async fn run_job(&self, job: &JobRef) {
        let _ = job;
    }

    /// Lets the deployed server of `instance` come up where nothing runs servers (a fake API
    /// server): the suite calls it after `deploy_from_volume`. The default does nothing.
    async fn run_server(&self, instance: &InstanceSpec) {
        let _ = instance;
    }

    /// What still exists of `instance` beyond [`ClusterExecutor::list_instances`] (volumes,
    /// servers, secrets, OS users, processes, job logs), one description each, sorted; empty when
    /// nothing is left. The default reports nothing, leaving it to `list_instances`.
    async fn resources_of(&self, instance: &InstanceSpec) -> Vec<String> {
        let _ = instance;
        Vec::new()
    }

    /// What still exists of `job` (the job, its secret, its processes, its log), like
    /// [`ExecutorHarness::resources_of`]. The default reports nothing.
    async fn resources_of_job(&self, job: &JobRef) -> Vec<String> {
        let _ = job;
        Vec::new()
    }
}
