//! The small inputs of this crate's own that activities take besides plain ids. Their JSON is
//! recorded in the durable history and compared byte for byte on replay: never change a field;
//! add a type and a new activity name instead.

use serde::{Deserialize, Serialize};
use toygres_core::{Error, ImageId, InstanceId, JobRef, Phase};

/// The job a step runs, to be killed when its operation is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOf {
    /// The backup job of an image.
    Backup(ImageId),
    /// The restore job of an instance.
    Restore(InstanceId),
}

impl JobOf {
    /// The executor's reference of the job (its name derives from the id).
    pub fn job_ref(self) -> JobRef {
        match self {
            JobOf::Backup(image) => JobRef::backup(image),
            JobOf::Restore(instance) => JobRef::restore(instance),
        }
    }
}

/// Input of the cleanup steps: what failed and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailInput<S> {
    /// The image or instance id (or, in `create-instance` 1.0.5, its spec).
    pub subject: S,
    /// The step that failed.
    pub step: Option<Phase>,
    /// Its error.
    pub message: String,
    /// Whether a caller cancelled the operation.
    pub cancelled: bool,
    /// What was cancelled, e.g. "restore of instance `<id>`".
    pub what: String,
}

impl<S> FailInput<S> {
    /// The error recorded as the failure reason: [`Error::Cancelled`] for a cancellation,
    /// otherwise the failed step's error.
    pub fn error(&self) -> Error {
        if self.cancelled {
            return Error::Cancelled { what: self.what.clone() };
        }
        let step = self.step.map(|s| s.to_string()).unwrap_or_else(|| "a step".into());
        Error::backend_msg("durable pipeline", format!("{step} failed: {}", self.message))
    }
}
