//! [`KeyChain`]: one provider for new images, others still trusted to open old ones, so that a
//! move from one provider to another (local keys to a KMS) is a rotation like any other.

use super::{DataKey, KeyProvider, WrappedKey};
use crate::error::{Error, Result};
use crate::ids::ImageId;
use async_trait::async_trait;
use std::sync::Arc;

/// Wraps new data keys with `primary`; unwraps each key with the provider that wrapped it
/// (by [`WrappedKey::provider`]), the primary first.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use toygres_core::envelope::{DataKey, KeyChain, KeyProvider, LocalKeys};
/// use toygres_core::ImageId;
/// let old = Arc::new(LocalKeys::from_hex(&"11".repeat(32)).unwrap());
/// let new = Arc::new(LocalKeys::from_hex(&"22".repeat(32)).unwrap());
/// let (image, key) = (ImageId::new(), DataKey::generate());
/// let wrapped_long_ago = old.wrap(image, &key).await.unwrap();
/// let chain = KeyChain::new(new.clone()).with_fallback(old);
/// assert_eq!(chain.unwrap(image, &wrapped_long_ago).await.unwrap(), key);
/// assert_eq!(chain.wrap(image, &key).await.unwrap().key_id, new.current_key_id().await.unwrap());
/// # });
/// ```
#[derive(Clone)]
pub struct KeyChain {
    primary: Arc<dyn KeyProvider>,
    fallbacks: Vec<Arc<dyn KeyProvider>>,
}

impl KeyChain {
    /// New images under `primary`.
    pub fn new(primary: Arc<dyn KeyProvider>) -> Self {
        Self { primary, fallbacks: Vec::new() }
    }

    /// Also opens images whose keys `provider` wrapped (tried after the primary).
    pub fn with_fallback(mut self, provider: Arc<dyn KeyProvider>) -> Self {
        self.fallbacks.push(provider);
        self
    }
}

#[async_trait]
impl KeyProvider for KeyChain {
    fn describe(&self) -> String {
        let mut text = self.primary.describe();
        for fallback in &self.fallbacks {
            text.push_str(&format!(", opening old images with {}", fallback.describe()));
        }
        text
    }

    async fn current_key_id(&self) -> Result<String> {
        self.primary.current_key_id().await
    }

    async fn wrap(&self, image: ImageId, key: &DataKey) -> Result<WrappedKey> {
        self.primary.wrap(image, key).await
    }

    /// The first provider that opens it; otherwise the primary's error, which names what it
    /// needs (the fallbacks' errors only say they do not hold it either).
    async fn unwrap(&self, image: ImageId, wrapped: &WrappedKey) -> Result<DataKey> {
        let first = match self.primary.unwrap(image, wrapped).await {
            Ok(key) => return Ok(key),
            Err(e @ Error::KeyUnavailable { .. }) => e,
            Err(other) => return Err(other),
        };
        for fallback in &self.fallbacks {
            if let Ok(key) = fallback.unwrap(image, wrapped).await {
                return Ok(key);
            }
        }
        Err(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::LocalKeys;

    #[tokio::test]
    async fn a_chain_moves_images_between_providers() {
        let old: Arc<dyn KeyProvider> = Arc::new(LocalKeys::from_hex(&"11".repeat(32)).unwrap());
        let new: Arc<dyn KeyProvider> = Arc::new(LocalKeys::from_hex(&"22".repeat(32)).unwrap());
        let (image, key) = (ImageId::new(), DataKey::generate());
        let wrapped = old.wrap(image, &key).await.unwrap();
        assert!(new.unwrap(image, &wrapped).await.is_err(), "the new provider alone cannot open it");
        let chain = KeyChain::new(new.clone()).with_fallback(old.clone());
        assert_eq!(chain.unwrap(image, &wrapped).await.unwrap(), key);
        let rewrapped = chain.wrap(image, &key).await.unwrap();
        assert_eq!(new.unwrap(image, &rewrapped).await.unwrap(), key, "new wraps are the primary's");
        assert!(chain.unwrap(ImageId::new(), &wrapped).await.is_err(), "still bound to its image");
        assert!(chain.describe().contains("opening old images"));
    }
}
