//! Progress events sent to a caller-supplied [`ProgressSink`].

use crate::ids::{ImageId, InstanceId};
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
