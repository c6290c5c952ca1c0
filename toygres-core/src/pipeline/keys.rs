//! Key rotation: every image's data key rewrapped under the provider's current key-encryption
//! key, without reading or writing a byte of any image.
//!
//! Each image is one compare-and-set in the catalog ([`crate::CatalogStore::rewrap_image_key`]),
//! so an image is always under either its old key or the new one: a rotation killed at any point
//! leaves every image readable as long as both keys are held, and running it again finishes the
//! rest. Once no image needs the old key ([`Toygres::key_usage`]), the old key can go.

use super::Toygres;
use crate::envelope::WrappedKey;
use crate::error::{Error, Result};
use crate::filter::{ImageFilter, MAX_PAGE};
use crate::ids::ImageId;
use crate::image::ImageRecord;
use std::collections::BTreeMap;
use std::time::Duration;

/// One image rewrapped (or found done), for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationStep {
    /// Images handled so far, this one included.
    pub done: usize,
    /// Images that needed rotation when it started.
    pub total: usize,
    /// The image.
    pub image: ImageId,
}

/// What [`Toygres::rotate_keys`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// The key-encryption key every image is now wrapped under.
    pub key_id: String,
    /// Images rewrapped by this run.
    pub rewrapped: usize,
    /// Images already under that key (or rewrapped meanwhile by someone else).
    pub already_current: usize,
    /// Images stored unencrypted (nothing to rotate).
    pub plaintext: usize,
    /// Images whose key could not be rewrapped, with why (e.g. their old key is gone).
    pub failed: Vec<(ImageId, String)>,
}

impl Toygres {
    /// Every image the catalog holds (deleted ones aside), oldest first.
    async fn all_images(&self) -> Result<Vec<ImageRecord>> {
        let mut all = Vec::new();
        loop {
            let filter = ImageFilter { limit: Some(MAX_PAGE), ..ImageFilter::default() };
            let page = self.catalog.list_images(&filter.after(all.last().map(ImageRecord::page_token))).await?;
            let full = page.len() == MAX_PAGE;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// How many images each key-encryption key wraps, by key id (plaintext images are not
    /// counted). A key with no images can be removed.
    pub async fn key_usage(&self) -> Result<BTreeMap<String, usize>> {
        let mut usage = BTreeMap::new();
        for image in self.all_images().await? {
            if let Some(wrapped) = image.encryption {
                *usage.entry(wrapped.key_id).or_default() += 1;
            }
        }
        Ok(usage)
    }

    /// Rewraps the data key of every image not yet under the provider's current key-encryption
    /// key, reporting each image to `progress`, at most one image per `pace` (a KMS's request
    /// quota is shared with everything else using it; `Duration::ZERO`: as fast as the provider
    /// answers). Idempotent and safe to interrupt (see the module docs); an image that cannot be
    /// rewrapped is reported in [`RotationReport::failed`] and the others still are. No key
    /// provider: [`Error::KeyUnavailable`].
    pub async fn rotate_keys(
        &self,
        pace: Duration,
        mut progress: impl FnMut(&RotationStep) + Send,
    ) -> Result<RotationReport> {
        let provider = self.keys.provider()?;
        let key_id = provider.current_key_id().await?;
        let mut report = RotationReport { key_id: key_id.clone(), ..RotationReport::default() };
        let mut todo = Vec::new();
        for image in self.all_images().await? {
            match image.encryption {
                None => report.plaintext += 1,
                Some(w) if w.key_id == key_id => report.already_current += 1,
                Some(w) => todo.push((image.id, w)),
            }
        }
        let total = todo.len();
        for (done, (image, wrapped)) in todo.into_iter().enumerate() {
            let paced = tokio::time::sleep(pace);
            match self.rewrap(image, &wrapped).await {
                Ok(true) => report.rewrapped += 1,
                Ok(false) => report.already_current += 1,
                Err(e) => {
                    tracing::warn!(%image, error = %e, "could not rewrap an image's data key");
                    report.failed.push((image, e.to_string()));
                }
            }
            progress(&RotationStep { done: done + 1, total, image });
            paced.await;
        }
        Ok(report)
    }

    /// Rewraps `image`'s data key; `false` when it is gone or someone else rewrapped it.
    async fn rewrap(&self, image: ImageId, wrapped: &WrappedKey) -> Result<bool> {
        let provider = self.keys.provider()?;
        let key = provider.unwrap(image, wrapped).await?;
        let new = provider.wrap(image, &key).await?;
        match self.catalog.rewrap_image_key(image, wrapped, &new).await {
            Ok(_) => Ok(true),
            Err(Error::StateConflict { .. } | Error::ImageNotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
