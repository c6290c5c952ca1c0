//! The image format shared by every executor, so an image taken on one restores on another.
//!
//! An image is a prefix in blob storage (`images/<image-id>/`) holding:
//! - `globals.sql.zst`: roles (with password hashes and memberships) as `pg_dumpall --globals-only`
//!   writes them, zstd-compressed;
//! - `db-0000.dump.zst`, `db-0001.dump.zst`, …: one `pg_dump --format=custom --compress=0` per
//!   database but `template0` (format 1: per non-template database that accepts connections),
//!   zstd-compressed;
//! - `manifest.json`: this [`Manifest`], written **last** (its presence means the image is complete).
//!   From format 2 it also carries each database's own SQL ([`DatabaseSql`]: locale, owner,
//!   settings, ACL, comment, security labels) and the source cluster's default locale
//!   ([`ClusterLocale`]).
//!
//! The image's checksum in the catalog is the sha256 of the manifest's bytes; the manifest holds the
//! sha256 and size of every other object, so one recorded checksum covers every byte.
//!
//! A restore: `initdb` with [`ClusterLocale::initdb_args`], the globals, then per database its
//! [`DatabaseSql::create`] (or [`DatabaseSql::create_for_existing`] for `postgres` and
//! `template1`), the dump loaded with `pg_restore --single-transaction`, and its
//! [`DatabaseSql::properties`]. Readers accept every format from [`OLDEST_FORMAT_VERSION`] to
//! [`FORMAT_VERSION`]; a format-1 image restores as before (no database-level SQL).

mod clone;
mod database_sql;
mod locale;

pub use clone::{CloneKind, ClonedFile, ManifestClone};
pub use database_sql::{exists_in_fresh_cluster, DatabaseSql};
pub use locale::ClusterLocale;

use crate::domain::{ImageFormat, ImageType};
use crate::envelope::{object, DataKey};
use crate::error::{Error, Result};
use crate::ids::ImageId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the image format written by this build.
pub const FORMAT_VERSION: u32 = 2;
/// Oldest image format this build restores.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Name of the manifest object.
pub const MANIFEST_NAME: &str = "manifest.json";
/// Name of the globals object.
pub const GLOBALS_NAME: &str = "globals.sql.zst";

/// Name of the `index`-th tar stream of a physical image.
pub fn archive_object_name(index: usize) -> String {
    format!("base-{index:02}.tar.zst")
}

/// Name of the dump object of the `index`-th database.
pub fn database_object_name(index: usize) -> String {
    format!("db-{index:04}.dump.zst")
}

/// One stored object of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    /// Object name relative to the image prefix.
    pub name: String,
    /// Stored (compressed) size in bytes.
    pub size: u64,
    /// `sha256:<hex>` of the stored bytes.
    pub sha256: String,
    /// Format 2: bytes before compression (what `pg_dump` wrote), when the writer counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_size: Option<u64>,
}

/// One database of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDatabase {
    /// Database name.
    pub name: String,
    /// Owning role.
    pub owner: String,
    /// The dump object.
    pub object: ManifestObject,
    /// Format 2: its own SQL (locale, owner, settings, ACL, comment, security labels).
    /// Empty in format-1 images.
    #[serde(default)]
    pub sql: DatabaseSql,
    /// Format 2: whether the source accepted connections to it (`datallowconn`). The backup
    /// allows them while it dumps the database; `sql.properties` ends by refusing them again.
    #[serde(default = "yes")]
    pub allow_connections: bool,
}

fn yes() -> bool {
    true
}

/// Describes an image's objects. See the module docs for the layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The image.
    pub image_id: ImageId,
    /// Source server version, e.g. `"15.18"`.
    pub pg_version: String,
    /// Source image type.
    pub image_type: ImageType,
    /// Logical (`pg_dump`, the default and format 1's only kind) or physical.
    #[serde(default)]
    pub format: ImageFormat,
    /// Compression of every object (`"zstd"`).
    pub compression: String,
    /// The roles dump.
    pub globals: ManifestObject,
    /// Every database but `template0` (logical images; empty in physical ones).
    pub databases: Vec<ManifestDatabase>,
    /// Physical images: the `pg_basebackup` tar streams (`base-NN.tar.zst`), each a valid tar of
    /// part of the data directory; unpacked together they are the data directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archives: Vec<ManifestObject>,
    /// When the backup finished.
    pub created_at: DateTime<Utc>,
    /// Format 2: the source cluster's default locale, for `initdb`. `None` in format-1 images
    /// (the restore then uses the target's defaults).
    #[serde(default)]
    pub cluster_locale: Option<ClusterLocale>,
    /// Format 2: version of the `pg_dump` that wrote the dumps (its archive version decides the
    /// oldest `pg_restore` that reads them), e.g. `"18.6"`.
    #[serde(default)]
    pub dump_version: Option<String>,
    /// Clone images ([`ImageFormat::Clone`]): the clone the executor keeps; the blob store holds
    /// only the globals and this manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<ManifestClone>,
    /// Physical images: the WAL the backup spans, for point-in-time restores from it
    /// ([`crate::wal`]). `None` in other images and in physical ones written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<crate::wal::WalRange>,
}

impl Manifest {
    /// Every object except the manifest itself.
    pub fn objects(&self) -> impl Iterator<Item = &ManifestObject> {
        std::iter::once(&self.globals).chain(self.databases.iter().map(|d| &d.object)).chain(self.archives.iter())
    }

    /// Bytes stored, including the manifest (`manifest_len`) and, for a clone image, the data
    /// its clone holds.
    pub fn total_size(&self, manifest_len: u64) -> u64 {
        let clone = self.clone.as_ref().map_or(0, |c| c.size);
        self.objects().map(|o| o.size).sum::<u64>() + manifest_len + clone
    }

    /// Serialized form, as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifest serializes")
    }

    /// Parses stored bytes, refusing formats newer than this build.
    pub fn from_bytes(image: ImageId, bytes: &[u8]) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::ImageIncomplete { image, detail: format!("manifest is not valid: {e}") })?;
        if m.format_version > FORMAT_VERSION {
            return Err(Error::Corrupt(format!(
                "image {image} has format {} but this toygres reads up to {FORMAT_VERSION}; upgrade toygres",
                m.format_version
            )));
        }
        if m.format_version < OLDEST_FORMAT_VERSION {
            return Err(Error::Corrupt(format!(
                "image {image} has format {}, older than the oldest this toygres reads ({OLDEST_FORMAT_VERSION})",
                m.format_version
            )));
        }
        if m.image_id != image {
            return Err(Error::ImageIncomplete { image, detail: format!("manifest belongs to image {}", m.image_id) });
        }
        Ok(m)
    }

    /// What is stored as `manifest.json`: [`Manifest::to_bytes`], sealed under the image's data key
    /// when it has one (an authenticated manifest: no blob writer can change or swap it).
    pub fn stored_bytes(&self, key: Option<&DataKey>) -> Vec<u8> {
        let plain = self.to_bytes();
        match key {
            Some(key) => object::seal_all(key, self.image_id, MANIFEST_NAME, &plain),
            None => plain,
        }
    }

    /// Parses the stored manifest `bytes` after checking them against the image's recorded
    /// `checksum` and, for an encrypted image (`key`), authenticating them under its data key.
    pub fn verified(image: ImageId, bytes: &[u8], checksum: &str, key: Option<&DataKey>) -> Result<Self> {
        let actual = sha256_hex(bytes);
        if actual != checksum {
            return Err(Error::ChecksumMismatch {
                image,
                object: MANIFEST_NAME.into(),
                expected: checksum.into(),
                actual,
            });
        }
        Self::from_stored(image, bytes, key)
    }

    /// Parses the stored manifest `bytes` of `image`, opening them under its data `key` when it is
    /// encrypted ([`Error::ImageNotAuthentic`] if they do not open).
    pub fn from_stored(image: ImageId, bytes: &[u8], key: Option<&DataKey>) -> Result<Self> {
        match key {
            Some(key) => Self::from_bytes(image, &object::open_all(key, image, MANIFEST_NAME, bytes)?),
            None => Self::from_bytes(image, bytes),
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format_sha256(Sha256::digest(bytes).into())
}

/// `sha256:<hex>` of a finished digest.
pub fn format_sha256(digest: [u8; 32]) -> String {
    format!("sha256:{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(image: ImageId) -> Manifest {
        let obj = |name: &str| ManifestObject {
            name: name.into(),
            size: 10,
            sha256: sha256_hex(name.as_bytes()),
            raw_size: None,
        };
        Manifest {
            format_version: FORMAT_VERSION,
            image_id: image,
            pg_version: "15.18".into(),
            image_type: ImageType::PgDurable,
            format: ImageFormat::Logical,
            compression: "zstd".into(),
            globals: obj(GLOBALS_NAME),
            databases: vec![ManifestDatabase {
                name: "app".into(),
                owner: "app".into(),
                object: obj(&database_object_name(0)),
                sql: DatabaseSql::default(),
                allow_connections: true,
            }],
            archives: vec![],
            created_at: Utc::now(),
            cluster_locale: None,
            dump_version: Some("15.18".into()),
            clone: None,
            wal: None,
        }
    }

    #[test]
    fn verified_round_trip_and_tamper_detection() {
        let id = ImageId::new();
        let bytes = sample(id).to_bytes();
        let sum = sha256_hex(&bytes);
        let m = Manifest::verified(id, &bytes, &sum, None).unwrap();
        assert_eq!(m.total_size(bytes.len() as u64), 20 + bytes.len() as u64);
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        assert!(matches!(Manifest::verified(id, &flipped, &sum, None), Err(Error::ChecksumMismatch { .. })));
        assert!(matches!(Manifest::verified(ImageId::new(), &bytes, &sum, None), Err(Error::ImageIncomplete { .. })));
    }
}

#[cfg(test)]
mod sealed_tests {
    use super::*;

    /// An encrypted image's manifest opens only under its key and image, and hides its contents.
    #[test]
    fn sealed_manifest_is_authenticated() {
        let (id, key) = (ImageId::new(), DataKey::generate());
        let manifest = tests_sample(id);
        let stored = manifest.stored_bytes(Some(&key));
        assert!(!stored.windows(9).any(|w| w == b"databases"), "the manifest is not readable without the key");
        let sum = sha256_hex(&stored);
        assert_eq!(Manifest::verified(id, &stored, &sum, Some(&key)).unwrap(), manifest);
        let other = DataKey::generate();
        assert!(matches!(Manifest::verified(id, &stored, &sum, Some(&other)), Err(Error::ImageNotAuthentic { .. })));
        assert!(Manifest::verified(id, &stored, &sum, None).is_err(), "sealed bytes never parse as plaintext");
        let plain = manifest.stored_bytes(None);
        assert!(Manifest::verified(id, &plain, &sha256_hex(&plain), Some(&key)).is_err(), "plaintext is refused");
    }

    fn tests_sample(id: ImageId) -> Manifest {
        let json = format!(
            r#"{{"format_version":2,"image_id":"{id}","pg_version":"15.18","image_type":"stock","compression":"zstd",
            "globals":{{"name":"globals.sql.zst","size":1,"sha256":"sha256:00"}},
            "databases":[],"created_at":"2026-11-01T00:00:00Z"}}"#
        );
        Manifest::from_bytes(id, json.as_bytes()).unwrap()
    }
}

#[cfg(test)]
mod format1_tests {
    use super::*;

    /// A manifest exactly as format 1 wrote it still reads, with format 2's fields defaulted.
    #[test]
    fn reads_format_1() {
        let id = ImageId::new();
        let json = format!(
            r#"{{"format_version":1,"image_id":"{id}","pg_version":"15.18","image_type":"stock","compression":"zstd",
            "globals":{{"name":"globals.sql.zst","size":1,"sha256":"sha256:00"}},
            "databases":[{{"name":"app","owner":"app","object":{{"name":"db-0000.dump.zst","size":2,"sha256":"sha256:11"}}}}],
            "created_at":"2026-11-01T00:00:00Z"}}"#
        );
        let m = Manifest::from_bytes(id, json.as_bytes()).unwrap();
        assert_eq!(m.databases[0].sql, DatabaseSql::default());
        assert!(m.databases[0].allow_connections);
        assert_eq!((m.cluster_locale, m.dump_version, m.format), (None, None, ImageFormat::Logical));
        let future = json.replacen("\"format_version\":1", "\"format_version\":3", 1);
        assert!(matches!(Manifest::from_bytes(id, future.as_bytes()), Err(Error::Corrupt(_))));
    }
}
