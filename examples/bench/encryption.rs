//! Encrypted against plaintext toygres images, in the same run. The encrypted side is the bench's
//! default `Toygres` (a local key directory); the plaintext side is a clone of it over the same
//! catalog, executor and blobs with `.with_plaintext_images()`. Both take part in the same
//! alternation and levelling as the other tools ([`crate::order`]).
//!
//! Every toygres step also records the pipeline's phases ([`crate::phases`]), so
//! an overhead can be placed without a profiler: the backup job (dump, compress, seal, store), the
//! control plane's verification, the restore job (verify into private storage, then load: split
//! further by its log, [`crate::joblog`]), and the server's start. And [`rates`] times sealing and opening in this process, which bounds what
//! the cipher itself can cost an image of a given stored size.

use crate::phases::Phases;
use crate::stats::{compare, Samples};
use crate::BoxResult;
use std::time::{Duration, Instant};
use toygres_core::envelope::{object, DataKey};
use toygres_core::ImageId;

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
