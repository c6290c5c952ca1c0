//! Finding records through [`Toygres`]: get, list with filters and pages, and labels.

use super::Toygres;
use crate::error::Result;
use crate::filter::{InstanceFilter, Page, MAX_PAGE};
use crate::ids::{ImageId, InstanceId};
use crate::image::{ImageFilter, ImageRecord};
use crate::instance::InstanceRecord;
use crate::labels::{validate_labels, Labels};

impl Toygres {
    /// The image, unless unknown or deleted ([`crate::Error::ImageNotFound`]).
    pub async fn get_image(&self, id: ImageId) -> Result<ImageRecord> {
        self.catalog.get_image(id).await
    }

    /// The instance, unless unknown or deleted ([`crate::Error::InstanceNotFound`]).
    pub async fn get_instance(&self, id: InstanceId) -> Result<InstanceRecord> {
        self.catalog.get_instance(id).await
    }

    /// The instance named `name`, unless unknown or deleted ([`crate::Error::InstanceNotFound`]).
    pub async fn get_instance_by_name(&self, name: &str) -> Result<InstanceRecord> {
        self.catalog.get_instance_by_name(name).await
    }

    /// One page of the images passing `filter`, oldest first: at most `filter.limit` (default and
    /// at most [`MAX_PAGE`]). Pass the page's `next` as the next filter's page token
    /// ([`ImageFilter::after`]) until it is `None`.
    ///
    /// ```no_run
    /// # async fn demo(t: toygres_core::Toygres, source: toygres_core::InstanceId) -> toygres_core::Result<()> {
    /// use toygres_core::{ImageFilter, ImageState};
    /// let mut token = None;
    /// loop {
    ///     let filter = ImageFilter::new().source(source).state(ImageState::Ready).limit(100).after(token);
    ///     let page = t.list_images(&filter).await?;
    ///     for image in &page.items { println!("{} {}", image.id, image.name); }
    ///     token = page.next;
    ///     if token.is_none() { break; }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_images(&self, filter: &ImageFilter) -> Result<Page<ImageRecord>> {
        let limit = page_limit(filter.limit);
        let mut fetch = filter.clone();
        fetch.limit = Some(limit + 1);
        let items = self.catalog.list_images(&fetch).await?;
        Ok(Page::from_overfetch(items, limit, ImageRecord::page_token))
    }

    /// One page of the instances passing `filter`, oldest first; paged like [`Toygres::list_images`].
    pub async fn list_instances(&self, filter: &InstanceFilter) -> Result<Page<InstanceRecord>> {
        let limit = page_limit(filter.limit);
        let mut fetch = filter.clone();
        fetch.limit = Some(limit + 1);
        let items = self.catalog.list_instances(&fetch).await?;
        Ok(Page::from_overfetch(items, limit, InstanceRecord::page_token))
    }

    /// Replaces the image's labels. Invalid labels are refused and change nothing.
    pub async fn set_image_labels(&self, id: ImageId, labels: Labels) -> Result<ImageRecord> {
        validate_labels(&labels)?;
        self.catalog.set_image_labels(id, &labels).await
    }

    /// Replaces the instance's labels. Invalid labels are refused and change nothing.
    pub async fn set_instance_labels(&self, id: InstanceId, labels: Labels) -> Result<InstanceRecord> {
        validate_labels(&labels)?;
        self.catalog.set_instance_labels(id, &labels).await
    }
}

fn page_limit(asked: Option<usize>) -> usize {
    asked.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE)
}
