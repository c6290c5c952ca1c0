//! [`Protection`]: an instance's continuous WAL archiving, as its catalog record keeps it.

use super::lsn::Lsn;
use crate::envelope::WrappedKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether an instance's WAL is being archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectionState {
    /// The executor runs the instance's WAL receiver; the archive grows.
    Active,
    /// Archiving stopped ([`crate::Toygres::unprotect`], or the instance was deleted). The archive
    /// is kept, and restorable, until the last base image it needs is deleted.
    Stopped,
}

/// An instance's continuous protection ([`crate::Toygres::protect`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// Archiving or stopped.
    pub state: ProtectionState,
    /// When protection (last) started.
    pub since: DateTime<Utc>,
    /// The archive's data key, wrapped like an image's; `None`: an unencrypted archive (only
    /// with [`crate::Toygres::with_plaintext_images`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<WrappedKey>,
    /// Restore points created through toygres ([`crate::Toygres::create_restore_point`]).
    #[serde(default)]
    pub restore_points: Vec<RestorePoint>,
}

impl Protection {
    /// A protection starting now, its archive sealed under `key`.
    pub fn started(key: Option<WrappedKey>) -> Self {
        Self { state: ProtectionState::Active, since: Utc::now(), key, restore_points: Vec::new() }
    }

    /// Whether the WAL is being archived.
    pub fn is_active(&self) -> bool {
        self.state == ProtectionState::Active
    }
}

/// A named restore point (`pg_create_restore_point`), where a restore may stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePoint {
    /// Its name.
    pub name: String,
    /// Where its WAL record is.
    pub lsn: Lsn,
    /// When it was created.
    pub time: DateTime<Utc>,
}
