//! A restore job's own log, read while the restore runs (the pipeline deletes a finished job
//! together with its log). Its timestamped lines split the job without a profiler: reading the
//! manifest, verifying every object into private storage, the new volume (`initdb`, a physical
//! image unpacked, or a clone image cloned), and the load (server start, rows, indexes, stop and
//! sync), with the largest database's own schema / rows / indexes split from its `loaded:` line.
//! Shared by the benches (`examples/bench` and, through `#[path]`, `examples/bench_clones`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the job directory is looked at until the restore job's log appears.
const POLL: Duration = Duration::from_millis(20);

/// Lines that start a segment of the job, by prefix, and the segment's name. A clone restore's
/// "new volume" is checking the clone image's tree and reflink-cloning it, then `cloned ` starts
/// its settings and `syncfs`.
const MARKERS: [(&str, &str); 7] = [
    ("verifying ", "job: verify"),
    ("image verified", "job: new volume"),
    ("unpacking ", "job: unpack"),
    ("unpacked ", "job: settings"),
    ("cloned ", "job: settings + syncfs"),
    ("volume initialised", "job: load"),
    ("job ", "job: manifest"),
];

/// Keeps the restore job's log: as soon as it appears under the job directory it is hard-linked
/// under `keep`, so it outlives the job (the pipeline removes it the moment the job has finished)
/// with every line the job writes.
pub struct Tail {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Option<PathBuf>>,
}

impl Tail {
    /// Starts watching `jobs` (the executor's job directory); the link goes in `keep`.
    pub fn start(jobs: PathBuf, keep: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            std::fs::create_dir_all(&keep).ok()?;
            loop {
                let done = flag.load(Ordering::Relaxed);
                for entry in std::fs::read_dir(&jobs).into_iter().flatten().flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with("restore-") && name.ends_with(".log") {
                        let kept = keep.join(&name);
                        if std::fs::hard_link(entry.path(), &kept).is_ok() {
                            return Some(kept);
                        }
                    }
                }
                if done {
                    return None;
                }
                tokio::time::sleep(POLL).await;
            }
        });
        Self { stop, task }
    }

    /// The restore job's whole log (empty if it was never seen); the kept link is removed.
    pub async fn stop(self) -> String {
        self.stop.store(true, Ordering::Relaxed);
        let Ok(Some(kept)) = self.task.await else { return String::new() };
        let text = std::fs::read_to_string(&kept).unwrap_or_default();
        let _ = std::fs::remove_file(&kept);
        text
    }
}

/// The job's segments (name, time) in `log`, and the schema / rows / indexes of the database
/// whose load took longest.
pub fn segments(log: &str) -> Vec<(String, Duration)> {
    let mut marks: Vec<(f64, &str)> = Vec::new();
    let mut largest: Option<[f64; 3]> = None;
    let mut midnight = 0.0;
    for line in log.lines() {
        let Some((stamp, text)) = line.split_once(' ') else { continue };
        let Some(mut at) = seconds(stamp) else { continue };
        at += midnight;
        if marks.last().is_some_and(|(last, _)| at < *last) {
            midnight += 86_400.0;
            at += 86_400.0;
        }
        if text.starts_with("job ") && (text.ends_with(" succeeded") || text.contains(" failed")) {
            marks.push((at, ""));
        } else if text.starts_with("job ") && !text.ends_with(" started") {
            continue;
        } else if let Some((_, name)) = MARKERS.iter().find(|(prefix, _)| text.starts_with(prefix)) {
            marks.push((at, name));
        } else if ["restore complete", "physical image unpacked", "clone image cloned"]
            .iter()
            .any(|p| text.starts_with(p))
        {
            marks.push((at, "job: finish"));
        } else if let Some(split) = loaded(text) {
            if largest.is_none_or(|l| l.iter().sum::<f64>() < split.iter().sum::<f64>()) {
                largest = Some(split);
            }
        }
    }
    let mut out: Vec<(String, Duration)> = Vec::new();
    for pair in marks.windows(2) {
        let ((from, name), (to, _)) = (pair[0], pair[1]);
        if name.is_empty() {
            continue;
        }
        let t = Duration::from_secs_f64((to - from).max(0.0));
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, total)) => *total += t,
            None => out.push((name.to_string(), t)),
        }
    }
    if let Some([schema, rows, indexes]) = largest {
        for (name, t) in [("load: schema", schema), ("load: rows", rows), ("load: indexes", indexes)] {
            out.push((name.to_string(), Duration::from_secs_f64(t)));
        }
    }
    out
}

/// `HH:MM:SS.mmm` as seconds since midnight.
fn seconds(stamp: &str) -> Option<f64> {
    let mut parts = stamp.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

/// `database "x" loaded: schema 0.10 s, data 3.20 s, indexes and constraints 1.50 s`.
fn loaded(text: &str) -> Option<[f64; 3]> {
    let rest = text.strip_prefix("database ")?.split_once(" loaded: ")?.1;
    let mut times = rest.split(", ").map(|part| part.rsplit(' ').nth(1)?.parse::<f64>().ok());
    Some([times.next()??, times.next()??, times.next()??])
}
