//! The executor conformance suite against the Kubernetes executor over the fake API server: kube's
//! client over tower-test ([`support::FakeApi`]), with the fake cluster of
//! `support/fake_cluster.rs` running the Jobs (from the environment the executor gave their
//! containers), the servers' pods and the garbage collector, and a blob store in memory.
//!
//! What is left of an instance or a job: whether `list_instances` lists the instance, and every
//! object of the fake API server whose name holds its id (or job name) or that is labelled as the
//! instance's.

#[path = "support/fake_cluster.rs"]
mod fake_cluster;
mod support;

use async_trait::async_trait;
use fake_cluster::{FakeCluster, PG_VERSION};
use std::sync::Arc;
use std::time::Duration;
use support::PASSWORD;
use toygres_core::testing::executor_suite::{self, Capabilities, ExecutorHarness, Support};
use toygres_core::{BlobStore, ClusterExecutor, ImageType, InstanceId, InstanceSpec, JobRef, Password};
use toygres_k8s::{K8sConfig, K8sExecutor, ServiceExposure};

struct K8sHarness {
    cluster: FakeCluster,
    executor: K8sExecutor,
    blobs: Arc<dyn BlobStore>,
    source: InstanceSpec,
}

impl K8sHarness {
    /// An executor over a fake cluster, and a source instance it provisioned (its pod Ready).
    async fn new() -> Self {
        let config = K8sConfig {
            exposure: ServiceExposure::LoadBalancer { region: Some("westus2".into()) },
            job_service_account: Some("toygres-jobs".into()),
            poll_interval: Duration::from_millis(20),
            load_balancer_timeout: Duration::from_secs(10),
            ..K8sConfig::default()
        };
        let (cluster, executor) = FakeCluster::start(config);
        let source = InstanceSpec {
            id: InstanceId::new(),
            name: "suite-source".into(),
            image_type: ImageType::Stock,
            pg_version: Some(PG_VERSION.into()),
            dns_label: Some("suite-source".into()),
        };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_executor_conforms() {
    let harness = K8sHarness::new().await;
    executor_suite::run_all(&harness).await;
    let source = harness.resources_of(&harness.source).await;
    assert!(source.len() >= 5, "the suite left the source's objects: {source:#?}");
}
