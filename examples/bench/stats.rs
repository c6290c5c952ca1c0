//! Samples, medians, ratios and this process's peak memory. Shared by the benches
//! (`examples/bench` and, through `#[path]`, `examples/bench_clones`).

pub use crate::samples::{list, median};
use std::collections::BTreeMap;
use std::time::Duration;

/// Resets the kernel's peak-RSS mark of this process (`VmHWM`), so the next reading covers only
/// what runs after it. Linux only; a no-op elsewhere.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This process's peak resident memory in MiB since start or the last [`reset_peak_rss`].
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
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

/// Samples by measurement name.
#[derive(Default)]
pub struct Samples(BTreeMap<String, Vec<Duration>>);

impl Samples {
    /// Adds one sample of `what`; returns it in seconds.
    pub fn push(&mut self, what: &str, t: Duration) -> f64 {
        self.0.entry(what.to_string()).or_default().push(t);
        t.as_secs_f64()
    }

    /// Every sample of `what`, in the order taken.
    pub fn get(&self, what: &str) -> &[Duration] {
        self.0.get(what).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Prints the medians of `ours` and `theirs` and returns their ratio (`ours` / `theirs`); `names`
/// label the two sample lists.
pub fn compare(what: &str, ours: &[Duration], theirs: &[Duration], names: (&str, &str)) -> f64 {
    let (m_ours, m_theirs) = (median(ours), median(theirs));
    let ratio = m_ours.as_secs_f64() / m_theirs.as_secs_f64();
    println!(
        "  {what}: {:.2} s vs {:.2} s → ratio {ratio:.2}  [{}: {}; {}: {}]",
        m_ours.as_secs_f64(),
        m_theirs.as_secs_f64(),
        names.0,
        list(ours),
        names.1,
        list(theirs)
    );
    ratio
}
