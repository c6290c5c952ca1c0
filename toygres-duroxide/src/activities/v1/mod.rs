//! The activities of `create-image` 1.0.0 and `create-instance` 1.0.5, unchanged: instances that
//! earlier builds started replay against them. Their inputs embed core records, so core keeps
//! the serde form of `ImageRecord`, `InstanceSpec`, `ConnectionInfo` and `BackupResult`
//! readable (the golden-history test, `tests/golden.rs`, checks it).

pub mod backup;
pub mod restore;

pub use backup::MarkReadyInput;
pub use restore::{RestoreJobInput, RunningInput, TestConnectionInput};
