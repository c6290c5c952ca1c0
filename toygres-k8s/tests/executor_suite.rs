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
#[path = "support/harness.rs"]
mod harness;
mod support;

use harness::K8sHarness;
use std::time::Duration;
use toygres_core::testing::executor_suite::{self, ExecutorHarness};
use toygres_k8s::{K8sConfig, ServiceExposure};

async fn harness() -> K8sHarness {
    let config = K8sConfig {
        exposure: ServiceExposure::LoadBalancer { region: Some("westus2".into()) },
        job_service_account: Some("toygres-jobs".into()),
        poll_interval: Duration::from_millis(20),
        load_balancer_timeout: Duration::from_secs(10),
        load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
        ..K8sConfig::default()
    };
    K8sHarness::new(config, "suite-source").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_executor_conforms() {
    let harness = harness().await;
    executor_suite::run_all(&harness).await;
    let source = harness.resources_of(&harness.source).await;
    assert!(source.len() >= 5, "the suite left the source's objects: {source:#?}");
}
