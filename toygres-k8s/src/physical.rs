//! Physical images (`pg_basebackup`) on Kubernetes: what the control plane refuses before a restore
//! Job exists, with typed errors.
//!
//! The backup Job's `dump` container streams `pg_basebackup -D - -Ft -X fetch -c fast` from the
//! source over a replication connection ([`crate::manifests::PG_HBA_CONF`]); whether the source can
//! be imaged physically (`wal_level`, `max_wal_senders`, tablespaces) only a connection tells, so
//! the Job checks it first and fails with the reason. The restore Job refuses another major than its
//! server's and unpacks the tar into the empty data directory as it reads it, checking its sha256 at
//! its end before it configures or marks anything (`templates/restore-unpack.sh`); the rules the configuration decides are also checked here.

use crate::config::K8sConfig;
use toygres_core::{Error, ImageFormat, ImageType, Manifest, RestoreJobSpec, Result};

/// The major of `pg_version` (`"15"` of `"15.18"`).
fn major(pg_version: &str) -> Option<&str> {
    pg_version.split('.').next().filter(|m| !m.is_empty())
}

/// The PostgreSQL major an instance of `image_type` at `pg_version` runs, when the configuration
/// decides it: its image names `{major}` ([`crate::PostgresImages`]). `None` for an image without
/// it (a fixed tag), whose major only the restore Job sees.
pub fn target_major(config: &K8sConfig, image_type: ImageType, pg_version: Option<&str>) -> Option<String> {
    let images = &config.postgres_images;
    let template = match image_type {
        ImageType::Stock => &images.stock,
        ImageType::PgDurable => &images.pg_durable,
    };
    if !template.contains("{major}") {
        return None;
    }
    Some(pg_version.and_then(major).unwrap_or(&images.default_major).to_string())
}

/// Refuses the restore of a physical `manifest` into `spec`'s instance when it cannot work: some
/// of its databases only ([`Error::InvalidRequest`] on `databases`: a data directory restores
/// whole), or an instance whose image runs another major than the image's ([`Error::UnsupportedImage`]:
/// data files are read only by the major that wrote them). Logical images pass.
///
/// Clone images ([`ImageFormat::Clone`], [`crate::clone`]) are data directories too: the same
/// rules hold for them.
pub fn check_restore(config: &K8sConfig, spec: &RestoreJobSpec, manifest: &Manifest) -> Result<()> {
    let format = manifest.format;
    if format == ImageFormat::Logical {
        return Ok(());
    }
    if spec.databases.is_some() {
        return Err(Error::InvalidRequest {
            field: "databases",
            reason: format!(
                "image {} is {format}: it restores as a whole data directory, not some of its databases; \
                 restore all of it, or take a logical image",
                spec.image_id
            ),
        });
    }
    let instance = &spec.instance;
    let target = target_major(config, instance.image_type, instance.pg_version.as_deref());
    match (major(&manifest.pg_version), target) {
        (Some(image), Some(target)) if image != target => Err(Error::UnsupportedImage {
            image: spec.image_id,
            reason: format!(
                "it is a {format} image of PostgreSQL {}, and {format} images restore only onto the same major, \
                 but instance {} would run PostgreSQL {target} ({}); restore it onto PostgreSQL {image}, or take \
                 a logical image to move to another major",
                manifest.pg_version,
                instance.name,
                config.postgres_images.image(instance.image_type, instance.pg_version.as_deref()),
            ),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_major_comes_from_the_image_template() {
        let config = K8sConfig::default();
        assert_eq!(target_major(&config, ImageType::Stock, Some("16.4")).as_deref(), Some("16"));
        assert_eq!(target_major(&config, ImageType::Stock, None).as_deref(), Some("15"));
        let mut pinned = config.clone();
        pinned.postgres_images.stock = "registry.example/postgres:custom".into();
        assert_eq!(target_major(&pinned, ImageType::Stock, Some("16.4")), None);
    }
}
