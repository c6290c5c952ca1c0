//! [`ImageMetadata`]: what an image holds, taken from its manifest when it becomes `ready` and
//! kept on its record, so that an embedder can see it without reading blob storage.

use crate::domain::ImageFormat;
use crate::manifest::Manifest;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One database of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageDatabase {
    /// Database name.
    pub name: String,
    /// Owning role.
    pub owner: String,
    /// Bytes its dump takes in blob storage (compressed).
    pub stored_bytes: u64,
    /// Bytes of its dump before compression, when the writer counted them (format 2).
    pub raw_bytes: Option<u64>,
}

/// What an image holds: its databases and sizes, its format, and when its backup ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageMetadata {
    /// Logical or physical.
    pub format: ImageFormat,
    /// Image format version (see [`crate::manifest::FORMAT_VERSION`]).
    pub format_version: u32,
    /// Version of the `pg_dump` that wrote the dumps, when recorded (format 2).
    pub dump_version: Option<String>,
    /// Every database in the image.
    pub databases: Vec<ImageDatabase>,
    /// Bytes in blob storage, manifest included (equals the record's `size_bytes`).
    pub stored_bytes: u64,
    /// Bytes before compression (dumps and globals), when the writer counted every object.
    pub raw_bytes: Option<u64>,
    /// When the (last) backup job started, when the pipeline saw it start.
    pub started_at: Option<DateTime<Utc>>,
    /// When the backup finished writing the image (the manifest's time).
    pub finished_at: DateTime<Utc>,
    /// Physical images: the WAL the backup spans ([`crate::Manifest::wal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<crate::wal::WalRange>,
}

impl ImageMetadata {
    /// The metadata of an image whose manifest is `manifest` (`manifest_len` bytes long), whose
    /// backup job started at `started_at`.
    pub fn from_manifest(manifest: &Manifest, manifest_len: u64, started_at: Option<DateTime<Utc>>) -> Self {
        let databases = manifest
            .databases
            .iter()
            .map(|d| ImageDatabase {
                name: d.name.clone(),
                owner: d.owner.clone(),
                stored_bytes: d.object.size,
                raw_bytes: d.object.raw_size,
            })
            .collect();
        Self {
            format: manifest.format,
            format_version: manifest.format_version,
            dump_version: manifest.dump_version.clone(),
            databases,
            stored_bytes: manifest.total_size(manifest_len),
            raw_bytes: manifest.objects().map(|o| o.raw_size).sum(),
            started_at,
            finished_at: manifest.created_at,
            wal: manifest.wal.clone(),
        }
    }

    /// Names of the image's databases.
    pub fn database_names(&self) -> impl Iterator<Item = &str> + Clone {
        self.databases.iter().map(|d| d.name.as_str())
    }
}
