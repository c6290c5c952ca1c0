//! The executor conformance suite's harness over the fake cluster, shared by `executor_suite.rs`
//! and `rbac.rs` (each includes it, after `fake_cluster`, with `#[path]`).

use crate::fake_cluster::{FakeCluster, PG_VERSION};
use crate::support::PASSWORD;
use async_trait::async_trait;
use std::sync::Arc;
use toygres_core::testing::executor_suite::{Capabilities, ExecutorHarness, Support};
use toygres_core::{BlobStore, ClusterExecutor, ImageType, InstanceId, InstanceSpec, JobRef, Password};
use toygres_k8s::{K8sConfig, K8sExecutor};

/// A new instance named `name` (its DNS label too) of the fake cluster's PostgreSQL version.
pub fn instance(name: &str) -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::new(),
        name: name.into(),
        image_type: ImageType::Stock,
        pg_version: Some(PG_VERSION.into()),
        dns_label: Some(name.into()),
    }
}

pub struct K8sHarness {
    pub cluster: FakeCluster,
    pub executor: K8sExecutor,
    pub blobs: Arc<dyn BlobStore>,
    pub source: InstanceSpec,
}

impl K8sHarness {
    /// An executor configured by `config` over a fake cluster, and a source instance named
    /// `source` that it provisioned (its pod Ready).
    pub async fn new(config: K8sConfig, source: &str) -> Self {
        let (cluster, executor) = FakeCluster::start(config);
        let source = instance(source);
        executor.provision_empty(&source, &Password::new(PASSWORD)).await.unwrap();
        cluster.run_server(&source).await;
        let blobs = Arc::new(cluster.blobs());
        Self { cluster, executor, blobs, source }
    }
}

#[async_trait]
impl ExecutorHarness for K8sHarness {
    fn executor(&self) -> Arc<dyn ClusterExecutor> {
        Arc::new(self.executor.clone())
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }

    fn source(&self) -> InstanceSpec {
        self.source.clone()
    }

    fn source_password(&self) -> Password {
        Password::new(PASSWORD)
    }

    /// The fake cluster's jobs log progress lines as the job scripts do, so byte progress is
    /// checked, and list_instances lists by label what the fake API server holds. Connections,
    /// which it cannot show, are declared, not skipped silently.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            connections: Support::No(
                "no PostgreSQL runs behind the fake API server: connection_info names the Service's load \
                 balancer address (TEST-NET-3), where nothing listens; toygres-local's suite run tests real \
                 connections, and tests/scripts.rs the job scripts against real servers",
            ),
            byte_progress: Support::Yes,
            instance_listing: Support::Yes,
        }
    }

    async fn run_job(&self, job: &JobRef) {
        self.cluster.run_job(job).await;
    }

    async fn run_server(&self, instance: &InstanceSpec) {
        self.cluster.run_server(instance).await;
    }

    async fn resources_of(&self, instance: &InstanceSpec) -> Vec<String> {
        let id = instance.id.to_string();
        self.cluster.left_of(&id, Some(&id))
    }

    async fn resources_of_job(&self, job: &JobRef) -> Vec<String> {
        self.cluster.left_of(&job.name, None)
    }
}
