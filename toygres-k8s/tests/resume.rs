//! Runs that resume, against the fake API server in paused time: a restore resumed after its
//! instance was deployed (a control-plane restart) neither runs nor waits for a restore Job again
//! (the server holds the volume: a Job mounting it would wait on a Multi-Attach); a Job whose
//! first pod failed mid-load is followed to its retry's end; an hour-old event about a Service
//! never fails its LoadBalancer wait.

mod support;

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::events::{an_hour_ago, EventSpec};
use support::*;
use tokio::time::Instant;
use toygres_core::{ClusterExecutor, InstanceSpec, JobRef, NoProgress, Password};
use toygres_k8s::K8sExecutor;

const MINUTE: Duration = Duration::from_secs(60);

/// Marks Job `name` complete.
fn complete(fake: &FakeApi, name: &str) {
    let done = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
    assert!(fake.modify(&job(name), |j| j["status"] = done), "job {name} exists");
}

/// Whether a call created a Job.
fn created_a_job(calls: &[String]) -> bool {
    calls.iter().any(|c| c.starts_with("POST") && c.contains("/jobs"))
}

/// The restore steps up to the deploy: volume, Job (completed by the fake), wait, delete.
async fn restore_until_deployable(fake: &FakeApi, executor: &K8sExecutor, i: &InstanceSpec) {
    executor.create_volume(i, &Password::new(PASSWORD)).await.unwrap();
    let job_ref = executor.start_restore_job(&restore_spec(i)).await.unwrap();
    complete(fake, &job_ref.name);
    executor.wait_for_job(&job_ref, 10 * MINUTE, Arc::new(NoProgress)).await.unwrap();
    executor.delete_job(&job_ref).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_restore_resumed_after_the_deploy_runs_no_restore_job_again() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = restored(None);
    restore_until_deployable(&fake, &executor, &i).await;

    // Resumed before the deploy: the steps run again, a new Job included (its script finds the
    // marker and exits); nothing holds the volume yet.
    fake.take_calls();
    let rerun = executor.start_restore_job(&restore_spec(&i)).await.unwrap();
    assert!(created_a_job(&fake.take_calls()), "before the deploy a resumed restore starts its Job");
    complete(&fake, &rerun.name);
    executor.wait_for_job(&rerun, 10 * MINUTE, Arc::new(NoProgress)).await.unwrap();
    executor.delete_job(&rerun).await.unwrap();

    executor.deploy_from_volume(&i).await.unwrap();
    // The control plane restarts and resumes every step of the instance.
    fake.take_calls();
    let job_ref = executor.start_restore_job(&restore_spec(&i)).await.unwrap();
    assert_eq!(job_ref, JobRef::restore(i.id));
    let start = Instant::now();
    executor.wait_for_job(&job_ref, 10 * MINUTE, Arc::new(NoProgress)).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    executor.delete_job(&job_ref).await.unwrap();
    executor.deploy_from_volume(&i).await.unwrap();
    let calls = fake.take_calls();
    assert!(!created_a_job(&calls), "{calls:#?}");
    assert!(fake.get(&job(&job_ref.name)).is_none());
    assert!(fake.get(&core("persistentvolumeclaims", &i.resource_name())).is_some(), "the volume is kept");
}

/// A Job whose first pod failed mid-load (evicted, OOM, a node lost): the Job controller starts
/// another pod (the load script removes the partial data first), and the wait follows it.
#[tokio::test(start_paused = true)]
async fn a_restore_job_retried_after_a_partial_load_is_followed_to_its_end() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = restored(None);
    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    let job_ref = executor.start_restore_job(&restore_spec(&i)).await.unwrap();
    let uid = fake.get(&job(&job_ref.name)).unwrap()["metadata"]["uid"].as_str().unwrap().to_string();
    fake.modify(&job(&job_ref.name), |j| j["status"] = json!({"active": 1, "failed": 1}));
    let terminated = |code: i32| {
        json!({"name": "load", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
               "state": {"terminated": {"exitCode": code, "reason": "Error"}}})
    };
    let pod = |name: &str, status: serde_json::Value| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                            "labels": {"batch.kubernetes.io/controller-uid": uid}},
               "spec": {"containers": [{"name": "fetch"}, {"name": "load"}]}, "status": status})
    };
    let first = format!("{}-a1b2c", job_ref.name);
    fake.put(&core("pods", &first), pod(&first, json!({"phase": "Failed", "containerStatuses": [terminated(137)]})));
    let second = format!("{}-d3e4f", job_ref.name);
    fake.put(&core("pods", &second), pod(&second, json!({"phase": "Running"})));
    fake.set_log(&first, "load", "restore-load: restoring database 1 of 2\n");
    fake.set_log(&second, "load", "restore-load: removing the partial data directory of an earlier attempt\n");
    let done = fake.clone();
    let name = job_ref.name.clone();
    tokio::spawn(async move {
        tokio::time::sleep(20 * MINUTE).await;
        complete(&done, &name);
    });
    let start = Instant::now();
    executor.wait_for_job(&job_ref, 60 * MINUTE, Arc::new(NoProgress)).await.unwrap();
    assert!(start.elapsed() >= 20 * MINUTE, "{:?}", start.elapsed());
}

/// An hour-old `DnsRecordInUse` (an earlier Service's label) never fails the LoadBalancer wait;
/// the same event during the wait does, at once.
#[tokio::test(start_paused = true)]
async fn only_current_events_fail_the_load_balancer_wait() {
    let (fake, executor) = FakeApi::executor(blobs());
    let i = restored(Some("restored-db"));
    executor.deploy_from_volume(&i).await.unwrap();
    let name = i.resource_name();
    let taken = "Error syncing load balancer: Code=\"DnsRecordInUse\" Message=\"DNS record \
                 restored-db.westus2.cloudapp.azure.com is already used by another public IP.\"";
    let old = EventSpec::warning("Service", &name, "SyncLoadBalancerFailed", taken).at(an_hour_ago()).count(4);
    old.put(&fake);
    let (service, ready) = (core("services", &name), fake.clone());
    tokio::spawn(async move {
        tokio::time::sleep(2 * MINUTE).await;
        ready.modify(&service, |s| s["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}));
    });
    let start = Instant::now();
    let info = executor.connection_info(&i).await.unwrap();
    assert_eq!(info.host, "203.0.113.9");
    assert!(start.elapsed() >= 2 * MINUTE);

    let other = restored(Some("restored-db"));
    executor.deploy_from_volume(&other).await.unwrap();
    EventSpec::warning("Service", &other.resource_name(), "SyncLoadBalancerFailed", taken).put(&fake);
    let start = Instant::now();
    let err = executor.connection_info(&other).await.unwrap_err().to_string();
    assert!(err.contains("DnsRecordInUse") && err.contains("choose another dns_label"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}
