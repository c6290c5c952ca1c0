//! The `restore_command`: a small shell script in the spool. It hands the server a file named in
//! the plan once the fetcher has placed it, and refuses at once any other (a newer timeline's
//! history, the segment after the archive's end), so the server never waits for what will not
//! come and never reads a file being written. When the fetch failed it exits 127, which
//! PostgreSQL takes as a broken command and aborts recovery: never as the archive's end, which
//! would promote the server without the WAL that failed.

use super::Spool;
use toygres_core::Result;

/// Writes the script and returns the `restore_command` that runs it.
pub(super) fn write(spool: &Spool) -> Result<String> {
    let dir = spool.dir.display().to_string().replace('\'', "'\\''");
    let script = format!(
        "#!/bin/sh\n\
         # toygres: hands PostgreSQL the WAL the restore job places here ($1 = %f, $2 = %p)\n\
         d='{dir}'\n\
         grep -qxF -- \"$1\" \"$d/PLAN\" || exit 1\n\
         while :; do\n\
         \x20 if [ -f \"$d/$1\" ]; then exec cp -- \"$d/$1\" \"$2\"; fi\n\
         \x20 if [ -f \"$d/FAILED\" ]; then exit 127; fi\n\
         \x20 sleep 0.05\n\
         done\n"
    );
    spool.place("restore-wal.sh", script.as_bytes(), 0o750)?;
    Ok(format!("{}/restore-wal.sh %f %p", spool.dir.display()))
}
