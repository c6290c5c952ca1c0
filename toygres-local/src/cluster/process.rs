//! Starting programs with a clean environment, and turning their failures into errors with a
//! readable tail.

use std::ffi::OsStr;
use std::process::Stdio;
use tokio::process::Command;
use toygres_core::error::redact;
use toygres_core::{Error, Result};

/// The only variables a process toygres starts takes from the control plane's environment; none
/// is a secret. Everything else stays behind: the control plane's environment holds its API
/// token, cloud keys and catalog key, and whoever holds an instance's password reads that
/// server's environment (`COPY … FROM PROGRAM 'env'`). What a child needs beyond these (locale,
/// libpq's connection variables, a copy program's settings) is set where it is started.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "TMPDIR", "TZ"];

/// `program` with an environment of [`INHERITED_ENV`] only. Every process toygres starts is
/// made here (or by [`std_command`]).
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().envs(inherited());
    cmd
}

/// [`command`] for code that cannot wait asynchronously (`Drop`, discovery at start-up).
pub fn std_command(program: impl AsRef<OsStr>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.env_clear().envs(inherited());
    cmd
}

fn inherited() -> impl Iterator<Item = (&'static str, std::ffi::OsString)> {
    INHERITED_ENV.iter().filter_map(|name| std::env::var_os(name).map(|value| (*name, value)))
}

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
    async fn a_child_inherits_nothing_but_the_allowed_variables() {
        // The test runner's environment holds CARGO_* variables (and, under CI, CI=true).
        assert!(std::env::vars_os().any(|(k, _)| !INHERITED_ENV.iter().any(|i| OsStr::new(i) == k)));
        let mut cmd = command("sh");
        cmd.args(["-c", "env"]);
        let env = run(cmd, "env", &[]).await.unwrap();
        // `sh` sets PWD, SHLVL and `_` itself.
        let shell = ["PWD", "SHLVL", "_", "OLDPWD"];
        for line in env.lines() {
            let name = line.split_once('=').map_or(line, |(name, _)| name);
            assert!(INHERITED_ENV.contains(&name) || shell.contains(&name), "{name} reached the child");
        }
        assert!(env.lines().any(|l| l.starts_with("PATH=")), "PATH is kept: {env}");
    }

    #[tokio::test]
    async fn failures_carry_redacted_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'bad password hunter2' >&2; exit 3"]);
        let err = run(cmd, "testing", &["hunter2"]).await.unwrap_err().to_string();
        assert!(err.contains("bad password ***") && !err.contains("hunter2"), "{err}");
    }
}
