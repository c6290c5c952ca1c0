//! Running PostgreSQL's programs and turning their failures into errors with a readable tail.

use std::process::Stdio;
use tokio::process::Command;
use toygres_core::error::redact;
use toygres_core::{Error, Result};

/// How many trailing bytes of a program's output an error keeps.
pub const TAIL_BYTES: usize = 4000;

/// The last [`TAIL_BYTES`] of `text` (on a character boundary).
pub fn tail(text: &str) -> &str {
    if text.len() <= TAIL_BYTES {
        return text;
    }
    let mut start = text.len() - TAIL_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs `cmd` to completion with stdin closed and returns its stdout. On a non-zero exit, the
/// error names `what` and carries the tail of stderr with every `secrets` entry redacted.
pub async fn run(mut cmd: Command, what: &str, secrets: &[&str]) -> Result<String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let out = cmd.output().await.map_err(|e| {
        Error::backend("local cluster", format!("{what}: cannot run {program}; is PostgreSQL installed?"), e)
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for s in secrets {
        stderr = redact(&stderr, s);
    }
    Err(Error::backend_msg(
        "local cluster",
        format!("{what}: {program} exited with {}: {}", out.status, tail(stderr.trim())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        let long = format!("{}é{}", "a".repeat(TAIL_BYTES), "end");
        let t = tail(&long);
        assert!(t.ends_with("end") && t.len() <= TAIL_BYTES);
        assert_eq!(tail("short"), "short");
    }

    #[tokio::test]
    async fn failures_carry_redacted_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'bad password hunter2' >&2; exit 3"]);
        let err = run(cmd, "testing", &["hunter2"]).await.unwrap_err().to_string();
        assert!(err.contains("bad password ***") && !err.contains("hunter2"), "{err}");
    }
}
