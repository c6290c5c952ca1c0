//! The bench's one filesystem: a loop-mounted XFS with reflink in a sparse backing file on the
//! root disk. Deleting a file frees its blocks in XFS but not in the backing file, which would
//! grow with every restore and levelling; [`Disk::trim`] (`fstrim`) after each deletion punches
//! the freed blocks out of it, so the root disk holds only what the bench keeps. XFS frees a
//! deleted file's blocks in the background (inode GC): without a `syncfs` first, which waits for
//! that, `fstrim` missed them and the backing file grew to 9.6 GB while XFS used 6.5 GB.

use crate::BoxResult;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The filesystem under the bench directory, and the most it was seen using.
pub struct Disk {
    mount: PathBuf,
    peak: u64,
}

impl Disk {
    /// The filesystem holding `dir`; fails unless it can make reflink clones.
    pub fn of(dir: &Path) -> BoxResult<Self> {
        let fs = toygres_local::cluster::reflink::filesystem_of(dir)?;
        if !toygres_local::cluster::reflink::supports_reflink(dir)? {
            return Err(format!(
                "{} is on {fs}, which cannot make reflink clones; mount XFS with reflink (see the docs at the top \
                 of examples/bench_clones/main.rs) and pass it with --dir or TOYGRES_REFLINK_DIR",
                dir.display()
            )
            .into());
        }
        let mount = output(Command::new("findmnt").args(["-n", "-o", "TARGET", "-T"]).arg(dir))?;
        Ok(Self { mount: PathBuf::from(mount.trim()), peak: 0 })
    }

    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// Bytes in use on the filesystem now; remembered when it is the most so far.
    pub fn used(&mut self) -> BoxResult<u64> {
        let text = output(Command::new("df").args(["-B1", "--output=used"]).arg(&self.mount))?;
        let used = text.lines().nth(1).and_then(|l| l.trim().parse().ok()).ok_or("df printed no usage")?;
        self.peak = self.peak.max(used);
        Ok(used)
    }

    /// The most [`Disk::used`] saw.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// Gives the filesystem's free blocks back to the backing file's filesystem: `sync -f`
    /// (`syncfs`, which also finishes freeing deleted files), then `fstrim`.
    pub fn trim(&self) -> BoxResult<()> {
        output(Command::new("sync").arg("-f").arg(&self.mount))?;
        output(Command::new("fstrim").arg(&self.mount)).map(drop)
    }
}

fn output(cmd: &mut Command) -> BoxResult<String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}
