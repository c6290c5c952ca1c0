//! What a clone image's manifest says about the clone the executor keeps ([`ManifestClone`]).

use serde::{Deserialize, Serialize};

/// How the executor keeps a clone image's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloneKind {
    /// A recovered data directory on a reflink filesystem (XFS with `reflink=1`, btrfs), cloned
    /// file by file with `FICLONE` (the embedded default).
    Reflink,
    /// A CSI `VolumeSnapshot` of the source's volume, restored as a PVC whose `dataSource` is
    /// the snapshot (Kubernetes).
    VolumeSnapshot,
}

/// One file of a reflink clone, as it was when the image was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClonedFile {
    /// Path relative to the data directory, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its permission bits (e.g. `0o600`).
    pub mode: u32,
    /// `sha256:<hex>` of its contents: checked by the export, which reads every byte; a
    /// restore checks the tree's names, sizes and modes, which does not grow with its size.
    pub sha256: String,
}

/// A clone image's data, kept by the executor outside the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestClone {
    /// How it is kept.
    pub kind: CloneKind,
    /// The executor's name for it: a directory under its clone store, or the `VolumeSnapshot`.
    pub name: String,
    /// Bytes of data it holds (shared copy-on-write with every instance cloned from it).
    pub size: u64,
    /// Reflink clones: every regular file, sorted by path (empty for volume snapshots).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ClonedFile>,
    /// Reflink clones: every directory, relative and sorted (`""` is the data directory).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<String>,
}
