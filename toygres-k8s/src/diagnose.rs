//! Why a pod makes no progress: container waiting reasons, scheduling, and Warning events. A Job or
//! server whose pod is stuck fails with the reason instead of waiting out its whole timeout.

use crate::api;
use crate::executor::K8sExecutor;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use kube::ResourceExt;

/// Container waiting reasons that do not resolve by waiting (wrong image, missing Secret key, a
/// crash-looping server, …).
pub const STUCK_REASONS: [&str; 7] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// Warning event reasons that mean a pod cannot start: a volume that does not mount or attach, a
/// pod no node can take, a pod the admission chain (Pod Security, quota, webhooks) refused.
pub const STUCK_EVENTS: [&str; 5] =
    ["FailedMount", "FailedAttachVolume", "FailedScheduling", "FailedCreate", "SyncLoadBalancerFailed"];

/// What keeps `pod` from running, if its status says: a container waiting for a reason of
/// [`STUCK_REASONS`], or `PodScheduled=False`.
pub fn pod_problem(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let name = pod.name_any();
    let statuses = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    for container in statuses {
        let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else { continue };
        let reason = waiting.reason.as_deref().unwrap_or_default();
        if STUCK_REASONS.contains(&reason) {
            let message = waiting.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
            return Some(format!("pod {name} container {}: {reason}{message}", container.name));
        }
    }
    let conditions = status.conditions.iter().flatten();
    if let Some(c) = conditions.into_iter().find(|c| c.type_ == "PodScheduled" && c.status == "False") {
        let reason = c.reason.as_deref().unwrap_or("Unschedulable");
        let message = c.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
        return Some(format!("pod {name} cannot be scheduled: {reason}{message}"));
    }
    None
}

/// `reason: message` of an event.
fn describe(event: &Event) -> String {
    format!("{}: {}", event.reason.as_deref().unwrap_or("Warning"), event.message.as_deref().unwrap_or_default())
}

impl K8sExecutor {
    /// Warning events about the object `kind`/`name`, oldest first, as `reason: message`;
    /// with `stuck_only`, only those of [`STUCK_EVENTS`]. An error reading them is an empty list
    /// (events are a diagnosis, not a requirement: the RBAC may lack `events: list`).
    pub(crate) async fn warnings(&self, kind: &str, name: &str, stuck_only: bool) -> Vec<String> {
        let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
        let events = match self.api::<Event>().list(&ListParams::default().fields(&selector)).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::debug!(error = %e, "reading events failed");
                return Vec::new();
            }
        };
        let mut warnings: Vec<&Event> = events
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter(|e| !stuck_only || STUCK_EVENTS.contains(&e.reason.as_deref().unwrap_or_default()))
            .collect();
        warnings.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
        warnings.into_iter().map(describe).collect()
    }

    /// The pods of the Job with `uid` (none when they cannot be read).
    pub(crate) async fn job_pods(&self, uid: &str) -> Vec<Pod> {
        api::list(&self.api::<Pod>(), &format!("{}={uid}", crate::names::CONTROLLER_UID_LABEL))
            .await
            .unwrap_or_default()
    }

    /// What keeps `pods`, the pods of Job `job`, from running: a pod's
    /// [`pod_problem`], a stuck Warning event of a pending pod, or (no pod at all) one of the Job's.
    pub(crate) async fn job_problem(&self, job: &str, pods: &[Pod]) -> Option<String> {
        if pods.is_empty() {
            return self.warnings("Job", job, true).await.pop().map(|w| format!("job {job}: {w}"));
        }
        for pod in pods {
            if let Some(problem) = pod_problem(pod) {
                return Some(problem);
            }
        }
        for pod in pods.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")) {
            if let Some(w) = self.warnings("Pod", &pod.name_any(), true).await.pop() {
                return Some(format!("pod {}: {w}", pod.name_any()));
            }
        }
        None
    }
}
