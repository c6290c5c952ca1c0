//! Encrypted against plaintext toygres images, in the same run. The encrypted side is the bench's
//! default `Toygres` (a local key directory); the plaintext side is a clone of it over the same
//! catalog, executor and blobs with `.with_plaintext_images()`. Both take part in the same
//! alternation and levelling as the other tools ([`crate::order`]).
//!
//! Every toygres step also records the pipeline's phases (progress events' `Finished` times), so
//! an overhead can be placed without a profiler: the backup job (dump, compress, seal, store), the
//! control plane's verification, the restore job (verify into private storage, then load: split
//! further by its log, [`crate::joblog`]), and the server's start. And [`rates`] times sealing and opening in this process, which bounds what
//! the cipher itself can cost an image of a given stored size.

use crate::{compare, BoxResult, Samples};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use toygres_core::envelope::{object, DataKey};
use toygres_core::{EventKind, ImageId, ProgressEvent, ProgressSink};

/// The compared steps: (sample key of the encrypted side, RATIO name, label).
const STEPS: [(&str, &str, &str); 4] = [
    ("image", "encrypted_image_vs_plaintext", "logical image"),
    ("restore", "encrypted_restore_vs_plaintext", "logical restore to ready"),
    ("physical_image", "encrypted_physical_image_vs_plaintext", "physical image"),
    ("physical_restore", "encrypted_physical_restore_vs_plaintext", "physical restore to ready"),
];

/// Phases shorter than this (median, both sides) are left out of the breakdown.
const SHOWN_PHASE: Duration = Duration::from_millis(20);

/// The sample key of `step` on the plaintext side.
pub fn plain(step: &str) -> String {
    format!("plain_{step}")
}

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

    fn of(&self, step: &str) -> &[(String, Vec<Duration>)] {
        self.0.iter().find(|(s, _)| s == step).map(|(_, p)| p.as_slice()).unwrap_or(&[])
    }

    fn median(&self, step: &str, phase: &str) -> Duration {
        let samples = self.of(step).iter().find(|(p, _)| *p == phase).map(|(_, ts)| ts.as_slice());
        crate::stats::median(samples.unwrap_or(&[]))
    }
}

/// Prints the medians of both sides per step, with each step's phase breakdown (encrypted /
/// plaintext medians), and returns the four ratios (encrypted time / plaintext time).
pub fn report(s: &Samples, phases: &Phases) -> Vec<(&'static str, f64)> {
    println!("  encrypted vs plaintext toygres images (same run; ratio encrypted / plaintext):");
    let mut ratios = Vec::new();
    for (step, name, label) in STEPS {
        let ratio = compare(label, s.get(step), s.get(&plain(step)), ("encrypted", "plaintext"));
        let mut names: Vec<&str> = phases.of(step).iter().map(|(p, _)| p.as_str()).collect();
        for (p, _) in phases.of(&plain(step)) {
            if !names.contains(&p.as_str()) {
                names.push(p);
            }
        }
        let shown: Vec<String> = names
            .into_iter()
            .filter_map(|p| {
                let (e, t) = (phases.median(step, p), phases.median(&plain(step), p));
                (e.max(t) >= SHOWN_PHASE).then(|| format!("{p} {:.2}/{:.2}", e.as_secs_f64(), t.as_secs_f64()))
            })
            .collect();
        println!("      phases (s, encrypted/plaintext): {}", shown.join(", "));
        ratios.push((name, ratio));
    }
    ratios
}

/// Sealing and opening rates of one core in this process (MiB/s of plaintext, best of three over
/// 64 MiB), the streaming API the executors use, in 1 MiB pushes.
pub fn rates() -> BoxResult<(f64, f64)> {
    const LEN: usize = 64 << 20;
    let (key, image, plain) = (DataKey::generate(), ImageId::new(), vec![0x5au8; LEN]);
    let (mut seal, mut open) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let started = Instant::now();
        let mut sealed = Vec::with_capacity(object::sealed_len(LEN as u64) as usize);
        let mut sealer = object::ObjectSealer::new(&key, image, "rate");
        for piece in plain.chunks(1 << 20) {
            sealer.push(piece, &mut sealed);
        }
        sealer.finish(&mut sealed);
        seal = seal.min(started.elapsed());
        let started = Instant::now();
        let mut opened = Vec::with_capacity(LEN);
        let mut opener = object::ObjectOpener::new(&key, image, "rate");
        for piece in sealed.chunks(1 << 20) {
            opener.push(piece, &mut opened)?;
        }
        opener.finish(&mut opened)?;
        open = open.min(started.elapsed());
        if opened != plain {
            return Err("sealed and opened bytes differ".into());
        }
    }
    let mib = LEN as f64 / (1 << 20) as f64;
    Ok((mib / seal.as_secs_f64(), mib / open.as_secs_f64()))
}
