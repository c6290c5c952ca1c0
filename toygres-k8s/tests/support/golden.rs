//! Golden manifests: rendered YAML compared with `tests/golden/<name>.yaml`
//! (`UPDATE_GOLDEN=1` rewrites the files instead).

use std::path::PathBuf;

/// `value` as YAML, the way the golden files hold it.
pub fn yaml<T: serde::Serialize>(value: &T) -> String {
    serde_yaml::to_string(value).unwrap()
}

/// Checks `text` against the golden file `name`, or writes it there under `UPDATE_GOLDEN=1`.
pub fn check(name: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.yaml"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1 to create it", path.display()));
    assert_eq!(text, golden, "{name} differs from {}; rerun with UPDATE_GOLDEN=1 if intended", path.display());
}
