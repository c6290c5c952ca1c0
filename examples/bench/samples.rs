//! Medians and sample lists, shared by the benches (`examples/bench` and, through `#[path]`,
//! `examples/bench_clones` and `toygres-server/examples/bench_replicas`).

use std::time::Duration;

/// The median of `samples` (mean of the middle two for an even count; zero when empty).
pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let n = sorted.len();
    if n == 0 {
        Duration::ZERO
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

/// `samples` as `1.23 1.25 1.30` seconds.
pub fn list(samples: &[Duration]) -> String {
    samples.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect::<Vec<_>>().join(" ")
}
