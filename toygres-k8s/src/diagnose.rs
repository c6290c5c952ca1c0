//! Why a pod makes no progress: container waiting reasons, scheduling, and Warning events. A Job or
//! server whose pod is stuck fails with the reason instead of waiting out its whole timeout; one
//! refused at admission (`FailedCreate` on its Job or StatefulSet: Pod Security, quota) at once.
//! Only the events of the wait count, and what resolves by itself waits longer ([`events`]).

pub mod events;

use crate::api;
use crate::executor::K8sExecutor;
use events::{is_admission_refusal, latest, scaling_up, EventWatch, Patience, Problem, MULTI_ATTACH};
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
    container_problem(pod).or_else(|| scheduling_problem(pod))
}

/// A container of `pod` waiting for a reason of [`STUCK_REASONS`].
fn container_problem(pod: &Pod) -> Option<String> {
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
    None
}

/// `pod`'s condition `PodScheduled=False`.
fn scheduling_problem(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.iter().flatten();
    let c = conditions.into_iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    let reason = c.reason.as_deref().unwrap_or("Unschedulable");
    let message = c.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
    Some(format!("pod {} cannot be scheduled: {reason}{message}", pod.name_any()))
}

/// Whether `pod` has condition `type_` True.
fn has_condition(pod: &Pod, type_: &str) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// Whether `pod` is not running yet (phase `Pending`, or none reported).
fn pending(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), None | Some("Pending"))
}

/// Whether `pod`'s volumes are attached and mounted: the kubelet mounts them before it creates
/// the pod's sandbox (`PodReadyToStartContainers`) and starts a container.
fn volumes_ready(pod: &Pod) -> bool {
    let started = pod.status.as_ref().is_some_and(|s| {
        let init = s.init_container_statuses.iter().flatten();
        init.chain(s.container_statuses.iter().flatten())
            .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some() || s.terminated.is_some()))
    });
    !pending(pod) || has_condition(pod, "PodReadyToStartContainers") || started
}

/// Whether a Warning event `reason` still says something of `pod` in its current state: a
/// `FailedScheduling` of a scheduled pod or a `FailedMount` of a pod whose volumes are mounted
/// has resolved.
fn still_applies(pod: &Pod, reason: &str) -> bool {
    match reason {
        "FailedScheduling" => {
            !(has_condition(pod, "PodScheduled") || pod.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
        }
        "FailedMount" | "FailedAttachVolume" => !volumes_ready(pod),
        _ => true,
    }
}

/// `reason: message` of an event.
fn describe(event: &Event) -> String {
    format!("{}: {}", event.reason.as_deref().unwrap_or("Warning"), event.message.as_deref().unwrap_or_default())
}

impl K8sExecutor {
    /// The Warning events about the object `kind`/`name` (uid `uid`, when known) that are news to
    /// `watch`'s wait, oldest first, as `reason: message`; with `stuck_only`, only those of
    /// [`STUCK_EVENTS`]. An error reading them is an empty list (events are a diagnosis, not a
    /// requirement: the RBAC may lack `events: list`).
    pub(crate) async fn warnings(
        &self,
        watch: &mut EventWatch,
        kind: &str,
        name: &str,
        uid: Option<&str>,
        stuck_only: bool,
    ) -> Vec<String> {
        let events = self.current_events(watch, kind, name, uid).await;
        let mut warnings: Vec<&Event> = events
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter(|e| !stuck_only || STUCK_EVENTS.contains(&e.reason.as_deref().unwrap_or_default()))
            .collect();
        warnings.sort_by_key(|e| latest(e));
        warnings.into_iter().map(describe).collect()
    }

    /// The events about `kind`/`name`, all types (none when they cannot be read).
    async fn events_about(&self, kind: &str, name: &str) -> Vec<Event> {
        let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
        match self.api::<Event>().list(&ListParams::default().fields(&selector)).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::debug!(error = %e, "reading events failed");
                Vec::new()
            }
        }
    }

    /// The events about `kind`/`name` (uid `uid`) that are news to `watch`'s wait.
    async fn current_events(&self, watch: &mut EventWatch, kind: &str, name: &str, uid: Option<&str>) -> Vec<Event> {
        let events = self.events_about(kind, name).await;
        watch.current(kind, name, uid, events)
    }

    /// The pods of the Job with `uid` (none when they cannot be read).
    pub(crate) async fn job_pods(&self, uid: &str) -> Vec<Pod> {
        api::list(&self.api::<Pod>(), &format!("{}={uid}", crate::names::CONTROLLER_UID_LABEL))
            .await
            .unwrap_or_default()
    }

    /// What keeps `pod` from running: a container's [`STUCK_REASONS`], `PodScheduled=False`, or
    /// a current stuck Warning event of the pending pod that still applies. A scheduling problem
    /// while the cluster autoscaler adds a node, and a disk still attached to another node, are
    /// [`Patience::Transient`].
    pub(crate) async fn pod_diagnosis(&self, watch: &mut EventWatch, pod: &Pod) -> Option<Problem> {
        if let Some(problem) = container_problem(pod) {
            return Some(Problem::stuck(problem));
        }
        if !pending(pod) {
            return None;
        }
        let name = pod.name_any();
        let events = self.current_events(watch, "Pod", &name, pod.uid().as_deref()).await;
        let scaling = scaling_up(&events);
        let transient_if = |yes: bool| if yes { Patience::Transient } else { Patience::Stuck };
        if let Some(text) = scheduling_problem(pod) {
            return Some(Problem { text, patience: transient_if(scaling) });
        }
        let warning = events
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter(|e| STUCK_EVENTS.contains(&e.reason.as_deref().unwrap_or_default()))
            .filter(|e| still_applies(pod, e.reason.as_deref().unwrap_or_default()))
            .max_by_key(|e| latest(e))?;
        let patience = match warning.reason.as_deref() {
            Some("FailedScheduling") => transient_if(scaling),
            Some("FailedAttachVolume") => {
                transient_if(warning.message.as_deref().unwrap_or_default().contains(MULTI_ATTACH))
            }
            _ => Patience::Stuck,
        };
        Some(Problem { text: format!("pod {name}: {}", describe(warning)), patience })
    }

    /// What keeps the controller object `kind`/`name` (uid `uid`: a Job or StatefulSet) from
    /// creating its pod: a current admission refusal ([`Patience::Refused`]), or, when it has
    /// `no_pods`, any current stuck Warning event of it.
    pub(crate) async fn controller_problem(
        &self,
        watch: &mut EventWatch,
        kind: &str,
        name: &str,
        uid: Option<&str>,
        no_pods: bool,
    ) -> Option<Problem> {
        let events = self.current_events(watch, kind, name, uid).await;
        let warnings = events
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter(|e| STUCK_EVENTS.contains(&e.reason.as_deref().unwrap_or_default()));
        let text = |e: &Event| format!("{} {name}: {}", kind.to_lowercase(), describe(e));
        if let Some(refusal) = warnings.clone().filter(|e| is_admission_refusal(e)).max_by_key(|e| latest(e)) {
            return Some(Problem { text: text(refusal), patience: Patience::Refused });
        }
        let last = warnings.max_by_key(|e| latest(e)).filter(|_| no_pods)?;
        Some(Problem::stuck(text(last)))
    }

    /// What keeps `job`'s `pods` from running: the Job's [`K8sExecutor::controller_problem`],
    /// else the first pod's [`K8sExecutor::pod_diagnosis`].
    pub(crate) async fn job_problem(
        &self,
        watch: &mut EventWatch,
        job: &k8s_openapi::api::batch::v1::Job,
        pods: &[Pod],
    ) -> Option<Problem> {
        let uid = job.uid();
        if let Some(problem) =
            self.controller_problem(watch, "Job", &job.name_any(), uid.as_deref(), pods.is_empty()).await
        {
            return Some(problem);
        }
        for pod in pods {
            if let Some(problem) = self.pod_diagnosis(watch, pod).await {
                return Some(problem);
            }
        }
        None
    }
}
