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
    /// Manifest checksum, presence and size of every object, and the sha256 of every byte
    /// (streamed, constant memory). The default: a corrupted image is refused before anything exists.
    #[default]
    Full,
    /// Manifest checksum and object sizes only; the restore job still hashes every object before
    /// loading it. For very large remote images where reading them twice is too costly.
    ManifestAndSizes,
}

/// Verifies the image at `location` against `checksum` (`sha256:<hex>` of its stored manifest),
/// authenticates the manifest under the image's data `key` when it is encrypted (so the sha256 of
/// every object it lists is authentic too), and returns it. Errors: [`Error::ChecksumMismatch`] for changed bytes, [`Error::ImageIncomplete`]
/// for missing or truncated objects.
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
        if mode == VerifyMode::Full {
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
