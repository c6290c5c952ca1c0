//! The reflink filesystem the tests run on, shared by every test crate that needs one (included
//! with `#[path]`): `toygres-local/tests/reflink.rs`, the workspace's `tests/clones.rs` and
//! `tests/clone_export.rs`, `toygres-server/tests/clones.rs`.

use std::path::PathBuf;

/// `TOYGRES_REFLINK_DIR` (`eval "$(bash .ci/xfs.sh)"` loop-mounts an XFS with reflink there, as
/// root), or `None` when it is unset: the caller skips its test. With `CI=true`, an unset
/// variable fails the test instead: CI never skips these.
pub fn reflink_dir() -> Option<PathBuf> {
    match std::env::var_os("TOYGRES_REFLINK_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but TOYGRES_REFLINK_DIR is unset: run `eval \"$(bash .ci/xfs.sh)\"` as root")
        }
        None => {
            eprintln!("skipped: TOYGRES_REFLINK_DIR is unset (eval \"$(bash .ci/xfs.sh)\" as root)");
            None
        }
    }
}
