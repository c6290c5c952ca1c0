//! Equal footing for every timed step on a virtual machine. A guest page the host has not backed
//! yet (never touched, or handed back) costs a host fault on its first write, so whichever step
//! writes a new data directory into such memory first pays for pages the next step reuses:
//! measured here at pgbench scale 200, a pgBackRest restore took 5.8 s right after toygres's and
//! 6.9-8.5 s right before it, and toygres's moved the same way. Before each timed step the bench
//! writes a scratch file as large as the source's data directory, syncs it and deletes it, so
//! every step starts with the same warm, free page cache.
//! Shared by the benches (`examples/bench` and, through `#[path]`, `examples/bench_clones`).

use std::io::Write;
use std::path::Path;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Writes `bytes` of scratch data under `dir`, syncs, and deletes it again.
pub fn level(dir: &Path, bytes: u64) -> BoxResult<()> {
    let path = dir.join("level.scratch");
    let mut file = std::fs::File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let chunk = vec![0x5au8; 8 << 20];
    let mut written = 0;
    while written < bytes {
        file.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    file.sync_all()?;
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(())
}

/// Total bytes of the regular files under `dir` (a data directory's size).
pub fn dir_size(dir: &Path) -> BoxResult<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| format!("listing {}: {e}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += dir_size(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}
