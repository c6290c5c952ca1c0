//! What a client sees of an operation ([`OperationStatus`]), and the JSON the orchestrations
//! and activities exchange through duroxide: the custom status ([`StepStatus`]), an activity's
//! error ([`StepError`]) and an orchestration's failure ([`Failure`]).

use serde::{Deserialize, Serialize};
use toygres_core::{Error, Phase, Subject};

/// The state of an operation (one orchestration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    /// No orchestration for that subject.
    NotFound,
    /// Still working.
    Running,
    /// Finished: the image is `ready` / the instance `running`.
    Completed,
    /// Failed: the record is `failed` with the reason, what was created was removed.
    Failed,
    /// Cancelled by a caller: the record is `failed` with reason "cancelled".
    Cancelled,
}

/// An operation's state, current step and byte progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationStatus {
    /// The image or instance being created.
    pub subject: Subject,
    /// Its state.
    pub state: OperationState,
    /// The step running now (or the last one).
    pub step: Option<Phase>,
    /// Bytes moved so far by the current job.
    pub bytes_done: u64,
    /// Bytes the current job moves in all, when known.
    pub bytes_total: Option<u64>,
    /// Failure reason when failed or cancelled.
    pub error: Option<String>,
}

/// The orchestration's custom status: the step it waits for, and which attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStatus {
    /// The step.
    pub step: Phase,
    /// 1-based attempt of that step.
    pub attempt: u32,
}

impl StepStatus {
    /// Parses a custom status written by a toygres orchestration.
    pub fn parse(text: Option<&str>) -> Option<Self> {
        text.and_then(|t| serde_json::from_str(t).ok())
    }
}

/// An activity's error as the orchestration receives it (JSON in duroxide's `Err(String)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    /// The error's text (toygres errors never contain secrets).
    pub message: String,
    /// Whether retrying the step may succeed ([`Error::is_transient`]).
    pub transient: bool,
    /// The activity stopped because its orchestration was cancelled.
    #[serde(default)]
    pub cancelled: bool,
}

impl StepError {
    /// From a toygres error.
    pub fn from_error(error: &Error) -> Self {
        let cancelled = matches!(error, Error::Cancelled { .. });
        Self { message: error.to_string(), transient: error.is_transient(), cancelled }
    }

    /// The activity was cancelled.
    pub fn cancelled(what: &str) -> Self {
        Self::from_error(&Error::Cancelled { what: what.to_string() })
    }

    /// This process lost the step's lease; another runs it now. Never recorded in practice
    /// (duroxide drops the result of a step whose lease was lost); transient should it be.
    pub fn lease_lost() -> Self {
        let message = "this process lost the step's lease; another process runs the step now".to_string();
        Self { message, transient: true, cancelled: false }
    }

    /// Encodes it for duroxide.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("StepError serializes")
    }

    /// Decodes what an activity returned; text that is not a `StepError` (a panic, a poison
    /// message, a timeout) becomes a non-transient error with that text.
    pub fn decode(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_else(|_| Self {
            message: text.to_string(),
            transient: false,
            cancelled: false,
        })
    }
}

/// How a toygres orchestration failed (JSON in duroxide's `Err(String)` of the orchestration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The step that failed.
    pub step: Option<Phase>,
    /// The reason recorded in the catalog.
    pub reason: String,
    /// A caller cancelled it.
    pub cancelled: bool,
}

impl Failure {
    /// Encodes it for duroxide.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("Failure serializes")
    }

    /// Decodes an orchestration's error text (plain text for duroxide's own failures).
    pub fn decode(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_else(|_| Self { step: None, reason: text.to_string(), cancelled: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_and_plain_text_is_kept() {
        let e = StepError::from_error(&Error::Timeout { step: "x".into(), after: std::time::Duration::from_secs(1) });
        assert!(e.transient && !e.cancelled);
        assert_eq!(StepError::decode(&e.encode()), e);
        assert_eq!(StepError::decode("boom").message, "boom");
        assert!(StepError::cancelled("restore").cancelled);
        assert_eq!(Failure::decode("poison").reason, "poison");
    }
}
