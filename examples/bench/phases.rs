//! A toygres pipeline's phases, timed without a profiler: a progress sink ([`PhaseLog`]) keeps
//! every phase's `Finished` time (backup job, control-plane verification, restore job, deploy…),
//! and [`Phases`] gathers them over runs for medians. Shared by the benches (`examples/bench` and,
//! through `#[path]`, `examples/bench_clones`).

use std::sync::{Arc, Mutex};
use std::time::Duration;
use toygres_core::{EventKind, ProgressEvent, ProgressSink};

/// One step's phases: (phase or job segment, time), in the order they finished.
pub type StepPhases = Vec<(String, Duration)>;

/// A progress sink keeping the `Finished` time of every phase until [`PhaseLog::take`].
#[derive(Clone, Default)]
pub struct PhaseLog(Arc<Mutex<StepPhases>>);

impl PhaseLog {
    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        self.0.lock().expect("phase log").clear();
    }

    /// What was recorded since the last `clear` or `take`.
    pub fn take(&self) -> StepPhases {
        std::mem::take(&mut *self.0.lock().expect("phase log"))
    }
}

impl ProgressSink for PhaseLog {
    fn emit(&self, event: &ProgressEvent) {
        if let EventKind::Finished { elapsed } = event.kind {
            self.0.lock().expect("phase log").push((event.phase.to_string(), elapsed));
        }
    }
}

/// Each phase's samples over the runs of one step: (phase, times), in the order they first finished.
type PhaseSamples = Vec<(String, Vec<Duration>)>;

/// Phase samples by step key.
#[derive(Default)]
pub struct Phases(Vec<(String, PhaseSamples)>);

impl Phases {
    /// Records one run of `step` (a phase that ran twice counts once, with its times added).
    pub fn push(&mut self, step: &str, phases: StepPhases) {
        let index = match self.0.iter().position(|(s, _)| s == step) {
            Some(i) => i,
            None => {
                self.0.push((step.to_string(), Vec::new()));
                self.0.len() - 1
            }
        };
        let mut summed: StepPhases = Vec::new();
        for (phase, t) in phases {
            match summed.iter_mut().find(|(p, _)| *p == phase) {
                Some((_, total)) => *total += t,
                None => summed.push((phase, t)),
            }
        }
        let samples = &mut self.0[index].1;
        for (phase, t) in summed {
            match samples.iter_mut().find(|(p, _)| *p == phase) {
                Some((_, ts)) => ts.push(t),
                None => samples.push((phase, vec![t])),
            }
        }
    }

    /// Each phase's samples of `step`, in the order they first finished.
    pub fn of(&self, step: &str) -> &[(String, Vec<Duration>)] {
        self.0.iter().find(|(s, _)| s == step).map(|(_, p)| p.as_slice()).unwrap_or(&[])
    }

    /// The median time of `phase` in `step` (zero if it never ran).
    pub fn median(&self, step: &str, phase: &str) -> Duration {
        let samples = self.of(step).iter().find(|(p, _)| *p == phase).map(|(_, ts)| ts.as_slice());
        crate::samples::median(samples.unwrap_or(&[]))
    }
}
