//! What a wait makes of events, against the fake API server in paused time: a pod refused at
//! admission (`FailedCreate` on the StatefulSet or the Job) fails at once with the reason; old
//! events never fail a healthy wait; a scale-up or a disk moving between nodes gets
//! `K8sConfig::transient_grace`, anything else stuck `K8sConfig::stuck_grace`.

mod support;

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use support::events::{an_hour_ago, EventSpec};
use support::*;
use tokio::time::Instant;
use toygres_core::{ClusterExecutor, Error, ErrorClass, InstanceId, InstanceSpec, JobRef, NoProgress};

const MINUTE: Duration = Duration::from_secs(60);
const PSA: &str = "is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false \
                   (container \"postgres\" must set securityContext.allowPrivilegeEscalation=false), runAsNonRoot != \
                   true (pod or container \"postgres\" must set securityContext.runAsNonRoot=true)";
const QUOTA: &str = "is forbidden: exceeded quota: toygres-quota, requested: requests.memory=512Mi, used: \
                     requests.memory=1536Mi, limited: requests.memory=2Gi";
const LIMIT_RANGE: &str = "is forbidden: maximum memory usage per Container is 256Mi, but limit is 1Gi";
const MULTI_ATTACH: &str = "Multi-Attach error for volume \"pvc-0c4f\" Volume is already exclusively attached to one \
                            node and can't be attached to another";
const UNSCHEDULABLE: &str = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No \
                             preemption victims found for incoming pod.";

fn instance() -> InstanceSpec {
    support::restored(None)
}

/// A deployed instance (its StatefulSet has a uid) and the name of its server pod.
async fn deployed(fake: &FakeApi, executor: &toygres_k8s::K8sExecutor) -> (InstanceSpec, String, String) {
    let i = instance();
    executor.deploy_from_volume(&i).await.unwrap();
    let set = fake.get(&format!("/apis/apps/v1/namespaces/{NS}/statefulsets/{}", i.resource_name())).unwrap();
    let uid = set["metadata"]["uid"].as_str().unwrap().to_string();
    let pod = format!("{}-0", i.resource_name());
    (i, pod, uid)
}

/// Stores pod `name` (uid `uid`, labelled for Job `job_uid` if any) with `status`.
fn put_pod(fake: &FakeApi, name: &str, uid: &str, job_uid: Option<&str>, status: Value) {
    let labels = job_uid.map(|u| json!({"batch.kubernetes.io/controller-uid": u})).unwrap_or(json!({}));
    fake.put(
        &core("pods", name),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "uid": uid,
               "labels": labels}, "spec": {"containers": [{"name": "postgres"}]}, "status": status}),
    );
}

fn unschedulable() -> Value {
    json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
           "message": UNSCHEDULABLE}]})
}

/// Scheduled, its volumes not attached yet.
fn attaching() -> Value {
    json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
           "containerStatuses": [{"name": "postgres", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                                  "state": {"waiting": {"reason": "ContainerCreating"}}}]})
}

fn ready() -> Value {
    json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"},
           {"type": "Ready", "status": "True"}]})
}

/// Makes pod `name` Ready after `after`.
fn ready_after(fake: &FakeApi, name: &str, after: Duration) {
    let (fake, path) = (fake.clone(), core("pods", name));
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        fake.modify(&path, |p| p["status"] = ready());
    });
}

/// A running Job `name` with uid `uid`, completed after `done_after` if given.
fn running_job(fake: &FakeApi, name: &str, uid: &str, done_after: Option<Duration>) {
    let path = job(name);
    fake.put(
        &path,
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS, "uid": uid},
               "status": {"active": 1}}),
    );
    if let Some(after) = done_after {
        let fake = fake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let done = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
            fake.modify(&path, |j| j["status"] = done);
        });
    }
}

async fn wait_job(executor: &toygres_k8s::K8sExecutor, job: &JobRef) -> (toygres_core::Result<()>, Duration) {
    let start = Instant::now();
    let result = executor.wait_for_job(job, Duration::from_secs(7200), Arc::new(NoProgress)).await;
    (result, start.elapsed())
}

/// The StatefulSet's refusal (Pod Security) fails `wait_until_ready` at once with its message and
/// what to do; the same event of an older StatefulSet of the same name does not.
#[tokio::test(start_paused = true)]
async fn a_server_refused_by_pod_security_fails_at_once() {
    let (fake, executor) = FakeApi::executor(blobs());
    let (i, pod, set_uid) = deployed(&fake, &executor).await;
    let set = i.resource_name();
    let message = format!("create Pod {pod} in StatefulSet {set} failed error: pods \"{pod}\" {PSA}");
    // An older StatefulSet's refusal: not this one's.
    EventSpec::warning("StatefulSet", &set, "FailedCreate", &message).about("uid-of-an-older-set").put(&fake);
    let start = Instant::now();
    let err = executor.wait_until_ready(&i, 2 * MINUTE).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }) && err.to_string().contains("no pod yet"), "{err}");
    assert!(start.elapsed() >= 2 * MINUTE);

    EventSpec::warning("StatefulSet", &set, "FailedCreate", &message).about(&set_uid).put(&fake);
    let start = Instant::now();
    let err = executor.wait_until_ready(&i, 10 * MINUTE).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    assert_eq!(err.class(), ErrorClass::Failed, "{err}");
    let text = err.to_string();
    assert!(text.contains("refused at admission") && text.contains("violates PodSecurity"), "{text}");
    assert!(text.contains(&format!("statefulset {set}: FailedCreate: create Pod {pod}")), "{text}");
    assert!(text.contains("pod-security.kubernetes.io/enforce"), "{text}");
}

/// A refusal dated before the wait counts once the controller retries (its count grows).
#[tokio::test(start_paused = true)]
async fn an_old_refusal_counts_once_it_recurs() {
    let (fake, executor) = FakeApi::executor(blobs());
    let (i, pod, _) = deployed(&fake, &executor).await;
    let set = i.resource_name();
    let message = format!("create Pod {pod} in StatefulSet {set} failed error: pods \"{pod}\" {PSA}");
    let old = EventSpec::warning("StatefulSet", &set, "FailedCreate", &message).at(an_hour_ago()).count(7);
    old.put(&fake);
    let retried = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(3 * MINUTE).await;
        old.count(8).put(&retried);
    });
    let start = Instant::now();
    let err = executor.wait_until_ready(&i, 10 * MINUTE).await.unwrap_err().to_string();
    let waited = start.elapsed();
    assert!(waited >= 3 * MINUTE && waited < 3 * MINUTE + Duration::from_secs(5), "{waited:?}");
    assert!(err.contains("violates PodSecurity"), "{err}");
}

/// A Job's pods refused at admission (quota, LimitRange, Pod Security) fail the job at once with
/// the reason and what to do; a webhook that could not be called is only stuck.
#[tokio::test(start_paused = true)]
async fn a_job_refused_at_admission_fails_at_once() {
    let cases = [
        (QUOTA, "kubectl describe resourcequota"),
        (LIMIT_RANGE, "kubectl describe limitrange"),
        (PSA, "pod-security.kubernetes.io/enforce"),
    ];
    for (refusal, advice) in cases {
        let (fake, executor) = FakeApi::executor(blobs());
        let job_ref = JobRef::restore(InstanceId::new());
        running_job(&fake, &job_ref.name, "uid-job", None);
        let message = format!("Error creating: pods \"{}-x7k2p\" {refusal}", job_ref.name);
        EventSpec::warning("Job", &job_ref.name, "FailedCreate", &message).about("uid-job").put(&fake);
        let (result, waited) = wait_job(&executor, &job_ref).await;
        let err = result.unwrap_err();
        let Error::JobFailed { reason, .. } = &err else { panic!("{err}") };
        assert!(waited < Duration::from_secs(5), "{refusal}: {waited:?}");
        assert!(reason.starts_with(&format!("refused at admission: job {}: FailedCreate", job_ref.name)), "{reason}");
        assert!(reason.contains(refusal) && reason.contains(advice), "{reason}");
    }

    let (fake, executor) = FakeApi::executor(blobs());
    let job_ref = JobRef::restore(InstanceId::new());
    running_job(&fake, &job_ref.name, "uid-job", None);
    let message = "Error creating: Internal error occurred: failed calling webhook \"policy.example.com\": context \
                   deadline exceeded";
    EventSpec::warning("Job", &job_ref.name, "FailedCreate", message).about("uid-job").put(&fake);
    let (result, waited) = wait_job(&executor, &job_ref).await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("stuck for 180s") && err.contains("failed calling webhook"), "{err}");
    assert!(waited >= 3 * MINUTE && waited < 4 * MINUTE, "{waited:?}");
}

/// Old Warning events (a Multi-Attach and a refusal of an older Job of the same name, a
/// FailedScheduling since resolved) never fail a healthy wait; the same Multi-Attach, current,
/// is borne `transient_grace`, and then fails.
#[tokio::test(start_paused = true)]
async fn old_warning_events_never_fail_a_healthy_wait() {
    let (fake, executor) = FakeApi::executor(blobs());
    let (i, pod, _) = deployed(&fake, &executor).await;
    put_pod(&fake, &pod, "uid-pod", None, attaching());
    EventSpec::warning("Pod", &pod, "FailedAttachVolume", MULTI_ATTACH).at(an_hour_ago()).count(12).put(&fake);
    EventSpec::warning("Pod", &pod, "FailedScheduling", UNSCHEDULABLE).about("uid-pod").put(&fake);
    ready_after(&fake, &pod, 5 * MINUTE);
    let start = Instant::now();
    executor.wait_until_ready(&i, 30 * MINUTE).await.unwrap();
    assert!(start.elapsed() >= 5 * MINUTE);

    let job_ref = JobRef::restore(i.id);
    running_job(&fake, &job_ref.name, "uid-job-2", Some(5 * MINUTE));
    let message = format!("Error creating: pods \"{}-q8z4m\" {QUOTA}", job_ref.name);
    EventSpec::warning("Job", &job_ref.name, "FailedCreate", &message).about("uid-job-1").put(&fake);
    let (result, waited) = wait_job(&executor, &job_ref).await;
    result.unwrap();
    assert!(waited >= 5 * MINUTE);

    // Current: the disk is still attached to the node of the restore's pod.
    let (fake, executor) = FakeApi::executor(blobs());
    let (i, pod, _) = deployed(&fake, &executor).await;
    put_pod(&fake, &pod, "uid-pod", None, attaching());
    EventSpec::warning("Pod", &pod, "FailedAttachVolume", MULTI_ATTACH).about("uid-pod").put(&fake);
    ready_after(&fake, &pod, 8 * MINUTE);
    executor.wait_until_ready(&i, 30 * MINUTE).await.unwrap();
    fake.modify(&core("pods", &pod), |p| p["status"] = attaching());
    let start = Instant::now();
    let err = executor.wait_until_ready(&i, 30 * MINUTE).await.unwrap_err().to_string();
    let waited = start.elapsed();
    assert!(waited >= 15 * MINUTE && waited < 16 * MINUTE, "{waited:?}");
    assert!(err.contains("stuck for 900s") && err.contains("Multi-Attach"), "{err}");
}

/// A pod the cluster autoscaler adds a node for (`TriggeredScaleUp`) waits past `stuck_grace` and
/// runs; one it will not (`NotTriggerScaleUp` after it) fails after `stuck_grace`; a scale-up
/// that never brings a node fails after `transient_grace`. For the server and for a Job's pod.
#[tokio::test(start_paused = true)]
async fn a_scale_up_gets_the_transient_grace() {
    let scale_up = "pod triggered scale-up: [{aks-nodepool1-12345678-vmss 1->2 (max: 5)}]";
    let declined = "pod didn't trigger scale-up: 1 max node group size reached";
    for server in [true, false] {
        for (outcome, ready_in) in [("runs", Some(8 * MINUTE)), ("declined", None), ("never", None)] {
            let (fake, executor) = FakeApi::executor(blobs());
            let (i, server_pod, _) = deployed(&fake, &executor).await;
            let job_ref = JobRef::restore(i.id);
            let pod = if server { server_pod } else { format!("{}-m2x9c", job_ref.name) };
            put_pod(&fake, &pod, "uid-pod", (!server).then_some("uid-job"), unschedulable());
            EventSpec::warning("Pod", &pod, "FailedScheduling", UNSCHEDULABLE).about("uid-pod").put(&fake);
            EventSpec::normal("Pod", &pod, "TriggeredScaleUp", scale_up).about("uid-pod").put(&fake);
            if outcome == "declined" {
                let later = events::stamp(k8s_openapi::jiff::Timestamp::now() + Duration::from_secs(30));
                EventSpec::normal("Pod", &pod, "NotTriggerScaleUp", declined).about("uid-pod").at(later).put(&fake);
            }
            if let Some(after) = ready_in {
                ready_after(&fake, &pod, after);
            }
            let start = Instant::now();
            let result = if server {
                executor.wait_until_ready(&i, 30 * MINUTE).await
            } else {
                running_job(&fake, &job_ref.name, "uid-job", ready_in.map(|d| d + MINUTE));
                wait_job(&executor, &job_ref).await.0
            };
            let waited = start.elapsed();
            let case = format!("server={server} {outcome}: {waited:?}");
            match outcome {
                "runs" => {
                    result.unwrap();
                    assert!(waited >= 8 * MINUTE, "{case}");
                }
                "declined" => {
                    let err = result.unwrap_err().to_string();
                    assert!(err.contains("stuck for 180s") && err.contains("Insufficient cpu"), "{case}: {err}");
                    assert!(waited < 4 * MINUTE, "{case}");
                }
                _ => {
                    let err = result.unwrap_err().to_string();
                    assert!(err.contains("stuck for 900s") && err.contains("cannot be scheduled"), "{case}: {err}");
                    assert!(waited >= 15 * MINUTE && waited < 16 * MINUTE, "{case}");
                }
            }
        }
    }
}
