//! Checking an image against its recorded checksum before anything is restored from it.

use crate::blob::{BlobStore, ImageLocation};
use crate::envelope::DataKey;
use crate::error::{Error, Result};
use crate::manifest::{format_sha256, Manifest, MANIFEST_NAME};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How much of an image the control plane checks before a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyMode {
    /// [`VerifyMode::Full`], unless the executor's restore job checks every byte itself as it
    /// loads it ([`crate::ClusterExecutor::verifies_while_restoring`]): then
    /// [`VerifyMode::ManifestAndSizes`], so that a restore reads the image once. The default;
    /// [`VerifyMode::resolve`] decides. [`verify_image`] on its own, which knows no executor,
    /// reads it as `Full`.
    #[default]
    Auto,
    /// Manifest checksum, presence and size of every object, and the sha256 of every byte
    /// (streamed, constant memory): a corrupted image is refused before anything exists, at the
    /// cost of reading it once more than the restore job does.
    Full,
    /// Manifest checksum and object sizes only; the restore job still checks every object's
    /// sha256, and a corrupted image then fails the instance it created. For very large remote
    /// images where reading them twice is too costly.
    ManifestAndSizes,
}

impl VerifyMode {
    /// The mode a restore's verify step runs: [`VerifyMode::Auto`] becomes
    /// [`VerifyMode::ManifestAndSizes`] when `job_verifies` (the executor's restore job hashes
    /// every byte as it loads it, and never marks the volume restored otherwise), else
    /// [`VerifyMode::Full`]; an explicit mode stays as it is.
    pub fn resolve(self, job_verifies: bool) -> Self {
        match self {
            Self::Auto if job_verifies => Self::ManifestAndSizes,
            Self::Auto => Self::Full,
            explicit => explicit,
        }
    }
}

/// Verifies the image at `location` against `checksum` (`sha256:<hex>` of its stored manifest),
/// authenticates the manifest under the image's data `key` when it is encrypted (so the sha256 of
/// every object it lists is authentic too), and returns it; `mode` says whether every byte is hashed
/// too ([`VerifyMode::Auto`] is `Full` here). Errors: [`Error::ChecksumMismatch`] for changed bytes,
/// [`Error::ImageIncomplete`] for missing or truncated objects.
pub async fn verify_image(
    blobs: &dyn BlobStore,
    location: &ImageLocation,
    checksum: &str,
    key: Option<&DataKey>,
    mode: VerifyMode,
) -> Result<Manifest> {
    let image = location.image_id;
    let manifest = Manifest::verified(image, &blobs.read(location, MANIFEST_NAME).await?, checksum, key)?;
    let stored = blobs.stat(location).await?;
    for object in manifest.objects() {
        let found = stored.iter().find(|s| s.name == object.name).ok_or_else(|| Error::ImageIncomplete {
            image,
            detail: format!("object {} is missing from {}", object.name, blobs.describe()),
        })?;
        if found.size != object.size {
            return Err(Error::ImageIncomplete {
                image,
                detail: format!("object {} has {} bytes, the manifest says {}", object.name, found.size, object.size),
            });
        }
        if mode.resolve(false) == VerifyMode::Full {
            let mut hasher = Sha256::new();
            let mut stream = blobs.read_stream(location, &object.name).await?;
            while let Some(chunk) = stream.try_next().await? {
                hasher.update(&chunk);
            }
            let actual = format_sha256(hasher.finalize().into());
            if actual != object.sha256 {
                return Err(Error::ChecksumMismatch {
                    image,
                    object: object.name.clone(),
                    expected: object.sha256.clone(),
                    actual,
                });
            }
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::VerifyMode::{self, *};

    #[test]
    fn auto_is_the_default_and_resolves_against_the_restore_job() {
        assert_eq!(VerifyMode::default(), Auto);
        assert_eq!(Auto.resolve(true), ManifestAndSizes);
        assert_eq!(Auto.resolve(false), Full);
        for explicit in [Full, ManifestAndSizes] {
            assert_eq!(explicit.resolve(true), explicit);
            assert_eq!(explicit.resolve(false), explicit);
        }
    }

    #[test]
    fn configured_modes_keep_their_names() {
        for (text, mode) in [("\"full\"", Full), ("\"manifest_and_sizes\"", ManifestAndSizes), ("\"auto\"", Auto)] {
            assert_eq!(serde_json::from_str::<VerifyMode>(text).unwrap(), mode);
            assert_eq!(serde_json::to_string(&mode).unwrap(), text);
        }
    }
}
