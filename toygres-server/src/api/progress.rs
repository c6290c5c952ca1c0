//! Byte progress with an ETA: the engine reports bytes done and total; the server remembers when
//! it first saw each operation move bytes and estimates the rest at the rate seen since.

use crate::api::responses::Progress;
use crate::engine::{OperationState, OperationStatus};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use toygres_core::Subject;

/// Remembers the first byte count seen per operation.
#[derive(Debug, Default)]
pub struct EtaTracker {
    first_seen: Mutex<HashMap<Subject, (Instant, u64)>>,
}

impl EtaTracker {
    /// The API's progress of `status`, or `None` when nothing runs.
    pub fn progress(&self, status: &OperationStatus) -> Option<Progress> {
        if status.state != OperationState::Running {
            self.first_seen.lock().unwrap().remove(&status.subject);
            return None;
        }
        let eta_seconds = self.eta(status, Instant::now());
        Some(Progress {
            step: status.step.map(|s| s.to_string()),
            bytes_done: status.bytes_done,
            bytes_total: status.bytes_total,
            eta_seconds,
        })
    }

    fn eta(&self, status: &OperationStatus, now: Instant) -> Option<u64> {
        let total = status.bytes_total?;
        let mut seen = self.first_seen.lock().unwrap();
        let (since, first) = *seen.entry(status.subject).or_insert((now, status.bytes_done));
        if status.bytes_done < first {
            seen.insert(status.subject, (now, status.bytes_done));
            return None;
        }
        estimate(first, status.bytes_done, total, now.duration_since(since).as_secs_f64())
    }
}

/// Seconds to move the rest of `total` at the rate from `first` to `done` in `elapsed` seconds.
fn estimate(first: u64, done: u64, total: u64, elapsed: f64) -> Option<u64> {
    if done >= total {
        return Some(0);
    }
    let moved = done.saturating_sub(first) as f64;
    if moved <= 0.0 || elapsed <= 0.0 {
        return None;
    }
    Some(((total - done) as f64 / (moved / elapsed)).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_from_the_rate_seen() {
        assert_eq!(estimate(0, 50, 100, 5.0), Some(5));
        assert_eq!(estimate(10, 10, 100, 5.0), None);
        assert_eq!(estimate(0, 100, 100, 1.0), Some(0));
        assert_eq!(estimate(20, 60, 100, 2.0), Some(2));
    }
}
