//! Whether the local binaries can restore an image: checked by the pipeline before anything is
//! created ([`toygres_core::ClusterExecutor::check_restorable`]) and again by the restore job.

use crate::cluster::{major_version, PgBinaries};
use toygres_core::{Error, Manifest, Result};

/// Refuses an image from a newer major than the local binaries (their `pg_restore` cannot read
/// it), a physical image of another major, and one whose databases use the ICU locale provider when the binaries are built without ICU.
pub(crate) async fn check(bin: &PgBinaries, manifest: &Manifest) -> Result<()> {
    let local = bin.version().await?;
    let unsupported = |reason: String| Error::UnsupportedImage { image: manifest.image_id, reason };
    if let (Some(image), Some(here)) = (major_version(&manifest.pg_version), major_version(&local)) {
        if image > here {
            return Err(unsupported(format!(
                "it comes from PostgreSQL {}, newer than the local binaries ({local} in {}); \
                 install PostgreSQL {image} or later and point TOYGRES_PG_BIN at it",
                manifest.pg_version,
                bin.dir().display()
            )));
        }
    }
    super::physical::check_major(manifest, &local)?;
    let icu_default = manifest.cluster_locale.as_ref().is_some_and(|l| l.provider == "icu");
    let icu_databases: Vec<&str> = manifest
        .databases
        .iter()
        .filter(|d| d.sql.create.contains("LOCALE_PROVIDER = icu"))
        .map(|d| d.name.as_str())
        .collect();
    if (icu_default || !icu_databases.is_empty()) && !bin.has_icu().await {
        return Err(unsupported(format!(
            "it uses the ICU locale provider ({}) but the PostgreSQL in {} is built without ICU; \
             use binaries built --with-icu",
            if icu_default { "the cluster default".to_string() } else { format!("databases {icu_databases:?}") },
            bin.dir().display()
        )));
    }
    Ok(())
}
