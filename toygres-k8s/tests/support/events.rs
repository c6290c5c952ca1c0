//! Events as the API server keeps them (`lastTimestamp`, `count`, `involvedObject.uid`), for the
//! tests of which events a wait counts and how long it bears them.

use crate::support::{core, FakeApi, NS};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;

/// `at` as an event's `lastTimestamp` (whole seconds, as the API server writes it).
pub fn stamp(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The wall clock now, as a `lastTimestamp`.
pub fn now() -> String {
    stamp(Timestamp::now())
}

/// An hour ago, as a `lastTimestamp`: an event from before the wait (the API server keeps them an hour).
pub fn an_hour_ago() -> String {
    stamp(Timestamp::now() - SignedDuration::from_hours(1))
}

/// An event about `kind`/`object`: stored with [`EventSpec::put`].
#[derive(Debug, Clone)]
pub struct EventSpec {
    /// `Warning` or `Normal`.
    pub type_: &'static str,
    /// Kind of the object it is about.
    pub kind: &'static str,
    /// Name of the object it is about.
    pub object: String,
    /// Uid of the object it is about (`None`: not said).
    pub uid: Option<String>,
    /// Its reason.
    pub reason: &'static str,
    /// Its message.
    pub message: String,
    /// Its `lastTimestamp`.
    pub at: String,
    /// Its `count`.
    pub count: i32,
}

impl EventSpec {
    /// A Warning event, seen once, now.
    pub fn warning(kind: &'static str, object: &str, reason: &'static str, message: &str) -> Self {
        EventSpec {
            type_: "Warning",
            kind,
            object: object.into(),
            uid: None,
            reason,
            message: message.into(),
            at: now(),
            count: 1,
        }
    }

    /// A Normal event, seen once, now.
    pub fn normal(kind: &'static str, object: &str, reason: &'static str, message: &str) -> Self {
        EventSpec { type_: "Normal", ..Self::warning(kind, object, reason, message) }
    }

    /// About the object with `uid`.
    pub fn about(self, uid: &str) -> Self {
        EventSpec { uid: Some(uid.into()), ..self }
    }

    /// Last seen at `at`.
    pub fn at(self, at: String) -> Self {
        EventSpec { at, ..self }
    }

    /// Seen `count` times.
    pub fn count(self, count: i32) -> Self {
        EventSpec { count, ..self }
    }

    /// The event's name: one per object, reason and uid, so storing it again updates it.
    pub fn name(&self) -> String {
        let uid = self.uid.as_deref().map(|u| format!(".{u}")).unwrap_or_default();
        format!("{}.{}{uid}", self.object, self.reason.to_lowercase())
    }

    /// Stores (or updates) the event.
    pub fn put(&self, fake: &FakeApi) {
        let name = self.name();
        fake.put(
            &core("events", &name),
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": NS},
                   "involvedObject": {"kind": self.kind, "name": self.object, "namespace": NS, "uid": self.uid},
                   "type": self.type_, "reason": self.reason, "message": self.message,
                   "firstTimestamp": self.at, "lastTimestamp": self.at, "count": self.count}),
        );
    }
}
