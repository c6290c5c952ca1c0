//! What the supervisor remembers between runs (`state.json`, beside the spool): the last
//! completed segment it archived and the history files it shipped. The head itself lives in
//! the blob store.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toygres_core::Result;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct State {
    /// `(timeline, segment)` of the newest completed segment archived.
    pub(super) last_complete: Option<(u32, u64)>,
    /// Timelines whose history file is archived.
    pub(super) histories: Vec<u32>,
}

impl State {
    fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// The saved state, or a fresh one.
    pub(super) fn load(dir: &Path) -> Self {
        std::fs::read(Self::path(dir)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    /// Saves it atomically (a temporary file renamed over it).
    pub(super) fn save(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join("state.json.tmp");
        let bytes = serde_json::to_vec(self).expect("the state serializes");
        std::fs::write(&tmp, bytes).map_err(|e| crate::cluster::io_err(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, Self::path(dir))
            .map_err(|e| crate::cluster::io_err(format!("renaming {}", tmp.display()), e))
    }
}
