//! Progress events sent to a caller-supplied [`ProgressSink`], and the byte progress a catalog
//! keeps for every replica to read ([`StoredProgress`]).

use crate::ids::{ImageId, InstanceId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// What a pipeline is working on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Subject {
    /// An image being created or deleted.
    Image(ImageId),
    /// An instance being created or deleted.
    Instance(InstanceId),
}

impl Subject {
    /// `"image"` or `"instance"`: how catalogs spell the kind of record.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Image(_) => "image",
            Subject::Instance(_) => "instance",
        }
    }

    /// The record's id.
    pub fn uuid(&self) -> uuid::Uuid {
        match self {
            Subject::Image(id) => id.0,
            Subject::Instance(id) => id.0,
        }
    }

    /// The subject of `kind` ([`Subject::kind`]) and `id`, as catalogs read it back.
    pub fn from_parts(kind: &str, id: uuid::Uuid) -> crate::Result<Self> {
        match kind {
            "image" => Ok(Subject::Image(id.into())),
            "instance" => Ok(Subject::Instance(id.into())),
            other => Err(crate::Error::Corrupt(format!("unknown progress subject kind {other:?} in the catalog"))),
        }
    }
}

/// A pipeline step. Backup: `ReserveImage → LookupSource → BackupJob → MarkReady`.
/// Restore: `FetchImage → SourcePassword → VerifyImage → CreateRecord → CreateVolume →
/// StartRestoreJob → WaitRestoreJob → Deploy → WaitReady → ConnectionStrings → TestConnection → MarkRunning`.
/// Fresh instance: `CreateRecord → CreateVolume → InitializeEmpty → Deploy → … → MarkRunning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Phase {
    ReserveImage,
    LookupSource,
    BackupJob,
    MarkReady,
    FetchImage,
    SourcePassword,
    VerifyImage,
    CreateRecord,
    CreateVolume,
    StartRestoreJob,
    WaitRestoreJob,
    Deploy,
    WaitReady,
    ConnectionStrings,
    TestConnection,
    MarkRunning,
    Cleanup,
    Delete,
    /// A fresh instance's empty volume is initialised ([`crate::Provision`]).
    InitializeEmpty,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::str::FromStr for Phase {
    type Err = crate::Error;

    /// Parses the spelling of [`Phase`]'s `Display` (and serde), e.g. `BackupJob`.
    fn from_str(s: &str) -> crate::Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .map_err(|_| crate::Error::Corrupt(format!("unknown phase {s:?} in the catalog")))
    }
}

/// The byte progress of the operation on a subject, as a catalog keeps it
/// ([`crate::CatalogStore::record_progress`]) so that every replica can show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredProgress {
    /// The step moving the bytes.
    pub phase: Phase,
    /// Bytes done.
    pub done: u64,
    /// Total, when known.
    pub total: Option<u64>,
    /// When it was recorded (catalogs keep microseconds).
    pub updated_at: DateTime<Utc>,
}

impl StoredProgress {
    /// `done` of `total` bytes in `phase`, recorded at `updated_at`.
    pub fn new(phase: Phase, done: u64, total: Option<u64>, updated_at: DateTime<Utc>) -> Self {
        Self { phase, done, total, updated_at }
    }
}

/// What happened in a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventKind {
    /// The phase began.
    Started,
    /// The phase ended successfully.
    Finished {
        /// How long it took.
        elapsed: Duration,
    },
    /// The phase failed (the error follows in the pipeline's result).
    Failed {
        /// The error, as text.
        error: String,
    },
    /// Bytes moved so far.
    Bytes {
        /// Bytes done.
        done: u64,
        /// Total, when known.
        total: Option<u64>,
    },
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressEvent {
    /// What is being worked on.
    pub subject: Subject,
    /// Which step.
    pub phase: Phase,
    /// What happened.
    pub kind: EventKind,
}

/// Receives progress events. Must not block: forward to a channel if the work is slow.
/// Any `Fn(&ProgressEvent)` closure is a sink.
pub trait ProgressSink: Send + Sync {
    /// Called for every event.
    fn emit(&self, event: &ProgressEvent);
}

impl<F: Fn(&ProgressEvent) + Send + Sync> ProgressSink for F {
    fn emit(&self, event: &ProgressEvent) {
        self(event)
    }
}

/// A sink that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn emit(&self, _: &ProgressEvent) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_subjects_round_trip_through_their_catalog_spelling() {
        use Phase::*;
        for phase in [ReserveImage, BackupJob, WaitRestoreJob, Cleanup, Delete, InitializeEmpty] {
            assert_eq!(phase.to_string().parse::<Phase>().unwrap(), phase);
        }
        assert!("Nope".parse::<Phase>().is_err());
        for subject in [Subject::Image(ImageId::new()), Subject::Instance(InstanceId::new())] {
            assert_eq!(Subject::from_parts(subject.kind(), subject.uuid()).unwrap(), subject);
        }
        assert!(Subject::from_parts("schedule", uuid::Uuid::nil()).is_err());
    }
}
