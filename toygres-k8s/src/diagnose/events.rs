//! Which events are news to a wait, and how long a wait bears what they say.
//!
//! Events outlive what they report (the API server keeps them an hour): a Multi-Attach from
//! before a restore, a `FailedScheduling` since resolved, a refusal of an older object of the
//! same name. An [`EventWatch`] counts an event only if it is about the object the wait watches
//! (its `involvedObject.uid`, when both are known) and happened during the wait: its latest time
//! (`lastTimestamp`, `eventTime`, `series.lastObservedTime`) is after the wait began (less
//! [`CLOCK_SLACK`]), it appeared after the object's first read, or it recurred since (its count
//! grew or its latest time moved).
//!
//! A current event's [`Patience`]: an admission refusal ([`is_admission_refusal`]) fails the wait
//! at once; a disk still attached to another node ([`MULTI_ATTACH`]) and a `FailedScheduling`
//! while the cluster autoscaler adds a node ([`scaling_up`]) resolve by themselves and get
//! [`crate::K8sConfig::transient_grace`]; anything else [`crate::K8sConfig::stuck_grace`].

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeSet, HashMap};

/// How much earlier than the wait's start an event may be dated and still count as the wait's:
/// `lastTimestamp` has whole seconds, the API server's clock is not ours, and the object was
/// created by the step before the wait (a StatefulSet's refusal follows its creation at once).
pub const CLOCK_SLACK: SignedDuration = SignedDuration::from_secs(10);

/// What the attach/detach controller says (`FailedAttachVolume`) while a ReadWriteOnce disk is
/// still attached to the node of its previous pod: it moves once that node detaches it (force
/// detach after 6 min when the node is unhealthy), so it is transient.
pub const MULTI_ATTACH: &str = "Multi-Attach error";

/// The cluster autoscaler's (Normal) event on a pending pod that made it add nodes:
/// `pod triggered scale-up: [{<node group> 1->2 (max: 5)}]`.
pub const TRIGGERED_SCALE_UP: &str = "TriggeredScaleUp";

/// The cluster autoscaler's event on a pending pod no new node would fit:
/// `pod didn't trigger scale-up: …`.
pub const NOT_TRIGGER_SCALE_UP: &str = "NotTriggerScaleUp";

/// How long a wait bears a problem before it fails with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Patience {
    /// Not at all: the pod was refused at admission, and no retry of the controller's changes that.
    Refused,
    /// [`crate::K8sConfig::stuck_grace`].
    Stuck,
    /// [`crate::K8sConfig::transient_grace`]: a node being added, a disk moving between nodes.
    Transient,
}

/// What keeps a pod (or the controller that should create it) from running, and how long to bear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What, e.g. `pod pg-x-0: FailedMount: …`.
    pub text: String,
    /// How long to bear it.
    pub patience: Patience,
}

impl Problem {
    /// A problem borne for [`crate::K8sConfig::stuck_grace`].
    pub fn stuck(text: impl Into<String>) -> Self {
        Problem { text: text.into(), patience: Patience::Stuck }
    }
}

/// Whether `event` says the API server refused to create a pod (or claim) its controller made:
/// `FailedCreate` from the StatefulSet controller (`create Pod <pod> in StatefulSet <set> failed
/// error: pods "<pod>" is forbidden: violates PodSecurity …`) or the Job controller (`Error
/// creating: pods "<pod>" is forbidden: exceeded quota: …`), refused by Pod Security, a
/// ResourceQuota, a LimitRange, validation or an admission webhook. A webhook that could not be
/// called is not a refusal.
pub fn is_admission_refusal(event: &Event) -> bool {
    let message = event.message.as_deref().unwrap_or_default();
    event.reason.as_deref() == Some("FailedCreate")
        && ["is forbidden", "is invalid", "denied the request"].iter().any(|m| message.contains(m))
}

/// What to do about the refusal `message` in namespace `namespace`.
pub fn refusal_advice(message: &str, namespace: &str) -> String {
    if message.contains("PodSecurity") {
        format!(
            "the namespace's Pod Security level refuses the pod: compare `kubectl get namespace {namespace} \
             --show-labels` (pod-security.kubernetes.io/enforce) with the pod template, then run the step again"
        )
    } else if message.contains("quota") {
        format!(
            "a ResourceQuota of namespace {namespace} refuses it (`kubectl describe resourcequota -n {namespace}`): \
             raise the quota or lower the pods' requests and limits, then run the step again"
        )
    } else if message.contains("per Container") || message.contains("per Pod") || message.contains("LimitRange") {
        format!(
            "a LimitRange of namespace {namespace} refuses its requests or limits (`kubectl describe limitrange -n \
             {namespace}`): fit the pods' resources to it, then run the step again"
        )
    } else {
        "an admission policy refuses the pod: fix the policy or the pod template, then run the step again".into()
    }
}

/// The latest time `event` says it happened at (`lastTimestamp`, `eventTime`,
/// `series.lastObservedTime`, `firstTimestamp`, else its creation).
pub fn latest(event: &Event) -> Option<Timestamp> {
    let times = [
        event.last_timestamp.as_ref().map(|t| t.0),
        event.event_time.as_ref().map(|t| t.0),
        event.series.as_ref().and_then(|s| s.last_observed_time.as_ref()).map(|t| t.0),
        event.first_timestamp.as_ref().map(|t| t.0),
    ];
    let latest = times.into_iter().flatten().max();
    latest.or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// How often `event` happened (`count` or `series.count`).
fn count(event: &Event) -> i32 {
    event.count.unwrap_or(0).max(event.series.as_ref().and_then(|s| s.count).unwrap_or(0))
}

/// Whether, among `events` (current ones of one pod), the cluster autoscaler's latest word is that
/// the pod triggered a scale-up ([`TRIGGERED_SCALE_UP`], not a later [`NOT_TRIGGER_SCALE_UP`]).
pub fn scaling_up(events: &[Event]) -> bool {
    let words = events.iter().filter(|e| {
        let reason = e.reason.as_deref();
        reason == Some(TRIGGERED_SCALE_UP) || reason == Some(NOT_TRIGGER_SCALE_UP)
    });
    let last = words.max_by_key(|e| latest(e));
    last.is_some_and(|e| e.reason.as_deref() == Some(TRIGGERED_SCALE_UP))
}

/// The events one wait has seen, to tell what happened during it (see the module docs).
#[derive(Debug)]
pub struct EventWatch {
    /// The wait's start less [`CLOCK_SLACK`].
    since: Timestamp,
    /// Objects (`kind/name`) whose events were read.
    read: BTreeSet<String>,
    /// Count and latest time of each event (by name) when first seen.
    first_seen: HashMap<String, (i32, Option<Timestamp>)>,
}

impl Default for EventWatch {
    fn default() -> Self {
        Self::starting(Timestamp::now())
    }
}

impl EventWatch {
    /// A watch of a wait that began at `began`.
    pub fn starting(began: Timestamp) -> Self {
        let since = began.checked_sub(CLOCK_SLACK).unwrap_or(began);
        EventWatch { since, read: BTreeSet::new(), first_seen: HashMap::new() }
    }

    /// The current ones of `events`, all about `kind`/`name` (whose uid is `uid`, when known).
    pub fn current(&mut self, kind: &str, name: &str, uid: Option<&str>, events: Vec<Event>) -> Vec<Event> {
        let first_read = self.read.insert(format!("{kind}/{name}"));
        let mut current = Vec::new();
        for event in events {
            let about = event.involved_object.uid.as_deref();
            if matches!((about, uid), (Some(a), Some(u)) if !a.is_empty() && !u.is_empty() && a != u) {
                continue; // an older object of the same name
            }
            let mark = (count(&event), latest(&event));
            let key = event.metadata.name.clone().unwrap_or_default();
            let recent = mark.1.is_some_and(|t| t >= self.since);
            let news = match self.first_seen.get(&key) {
                None => {
                    self.first_seen.insert(key, mark);
                    !first_read
                }
                Some(first) => mark.0 > first.0 || mark.1 > first.1,
            };
            if recent || news {
                current.push(event);
            }
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, uid: Option<&str>, count: i32, last: &str) -> Event {
        serde_json::from_value(json!({"metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": "p",
            "uid": uid}, "reason": "FailedMount", "type": "Warning", "count": count, "lastTimestamp": last}))
        .unwrap()
    }

    #[test]
    fn only_events_of_the_wait_count() {
        let began: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let mut watch = EventWatch::starting(began);
        let old = event("old", None, 3, "2026-12-01T09:00:00Z");
        let slack = event("slack", None, 1, "2026-12-01T09:59:55Z");
        let other = event("other-pod", Some("uid-old"), 1, "2026-12-01T10:00:05Z");
        let names = |events: Vec<Event>| events.into_iter().map(|e| e.metadata.name.unwrap()).collect::<Vec<_>>();
        let first = watch.current("Pod", "p", Some("uid-new"), vec![old.clone(), slack.clone(), other.clone()]);
        assert_eq!(names(first), ["slack"]);
        // The old one recurs (count grows), a new one appears dated before the wait (clock skew).
        let again = event("old", None, 4, "2026-12-01T09:00:00Z");
        let skewed = event("new", None, 1, "2026-12-01T08:00:00Z");
        let second = watch.current("Pod", "p", Some("uid-new"), vec![again, skewed, other]);
        assert_eq!(names(second), ["old", "new"]);
        // Another object's first read: what it already had is old.
        let third = watch.current("Job", "j", None, vec![event("j-old", None, 1, "2026-12-01T09:00:00Z")]);
        assert!(third.is_empty());
    }

    #[test]
    fn refusals_and_scale_ups_are_told_apart() {
        let with = |reason: &str, message: &str, at: &str| -> Event {
            serde_json::from_value(json!({"metadata": {"name": reason}, "involvedObject": {}, "reason": reason,
                "message": message, "eventTime": at}))
            .unwrap()
        };
        let psa = with(
            "FailedCreate",
            "create Pod pg-x-0 in StatefulSet pg-x failed error: pods \"pg-x-0\" is forbidden: violates PodSecurity \
             \"restricted:latest\": runAsNonRoot != true",
            "2026-12-01T10:00:00.000000Z",
        );
        assert!(is_admission_refusal(&psa));
        assert!(refusal_advice(psa.message.as_deref().unwrap(), "toygres").contains("pod-security.kubernetes.io"));
        let webhook = with(
            "FailedCreate",
            "Error creating: Internal error occurred: failed calling webhook",
            "2026-12-01T10:00:00Z",
        );
        assert!(!is_admission_refusal(&webhook));
        let up =
            with(TRIGGERED_SCALE_UP, "pod triggered scale-up: [{agentpool 1->2 (max: 5)}]", "2026-12-01T10:00:01Z");
        let no = with(
            NOT_TRIGGER_SCALE_UP,
            "pod didn't trigger scale-up: 1 max node group size reached",
            "2026-12-01T10:00:09Z",
        );
        assert!(scaling_up(std::slice::from_ref(&up)));
        assert!(!scaling_up(&[up, no]));
        assert!(!scaling_up(&[]));
    }
}
