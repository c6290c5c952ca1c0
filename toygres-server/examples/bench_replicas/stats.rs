//! Medians, sample lists and the machine's load.

use std::time::Duration;

pub use super::samples::{list, median};

/// `samples` as `12 15 14` milliseconds.
pub fn list_ms(samples: &[Duration]) -> String {
    samples.iter().map(|d| format!("{:.0}", ms(*d))).collect::<Vec<_>>().join(" ")
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Bytes in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The 1-minute load average (`/proc/loadavg`; 0 elsewhere): how busy the shared machine was.
pub fn load_average() -> f64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0.0)
}
