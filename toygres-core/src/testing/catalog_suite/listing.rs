//! Properties of labels, metadata, filters and pages.

use super::{new_image, new_instance, ok, ready_update};
use crate::catalog::CatalogStore;
use crate::error::Error;
use crate::filter::InstanceFilter;
use crate::ids::{ImageId, InstanceId, OperationId};
use crate::image::{ImageFilter, ImageFormat, ImageRecord, ImageUpdate};
use crate::labels::Labels;
use crate::metadata::{ImageDatabase, ImageMetadata};
use crate::state::{ImageState, InstanceState};
use chrono::{TimeZone, Utc};
use std::sync::Arc;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Metadata with two databases, one without a raw size, and odd text in names.
pub fn sample_metadata() -> ImageMetadata {
    ImageMetadata {
        format: ImageFormat::Logical,
        format_version: 2,
        dump_version: Some("18.6".into()),
        databases: vec![
            ImageDatabase { name: "app ✓".into(), owner: "o'wner".into(), stored_bytes: 10, raw_bytes: Some(90) },
            ImageDatabase { name: "postgres".into(), owner: "postgres".into(), stored_bytes: 5, raw_bytes: None },
        ],
        stored_bytes: 123_456_789_012,
        raw_bytes: None,
        started_at: Some(Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()),
        finished_at: Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 7).unwrap(),
        wal: None,
    }
}

/// Labels given at reservation and by `set_image_labels` round-trip and filter lists (every
/// label must match); names filter; metadata of a ready image round-trips; unknown ids are
/// `ImageNotFound`.
pub async fn image_labels_and_metadata<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let source = InstanceId::new();
    let gold = labels(&[("tier", "gold"), ("team", "a")]);
    let a = ok(catalog.reserve_image(OperationId::new(), &new_image(source, "a").with_labels(gold.clone())).await, "a");
    let b = ok(
        catalog
            .reserve_image(OperationId::new(), &new_image(source, "b").with_labels(labels(&[("tier", "gold")])))
            .await,
        "b",
    );
    assert_eq!(a.labels, gold, "labels given at reservation are on the record");
    assert_eq!(ok(catalog.get_image(a.id).await, "get").labels, gold);
    let ids = |f: ImageFilter| {
        let catalog = catalog.clone();
        async move { ok(catalog.list_images(&f).await, "list").into_iter().map(|r| r.id).collect::<Vec<_>>() }
    };
    assert_eq!(ids(ImageFilter::new().label("tier", "gold")).await, vec![a.id, b.id]);
    assert_eq!(ids(ImageFilter::new().label("tier", "gold").label("team", "a")).await, vec![a.id]);
    assert_eq!(ids(ImageFilter::new().label("tier", "silver")).await, Vec::<ImageId>::new());
    assert_eq!(ids(ImageFilter::new().name("b")).await, vec![b.id]);

    let relabelled = ok(catalog.set_image_labels(b.id, &labels(&[("keep", "yes ✓")])).await, "relabel");
    assert_eq!(relabelled.labels, labels(&[("keep", "yes ✓")]));
    assert_eq!(ids(ImageFilter::new().label("tier", "gold")).await, vec![a.id], "set_image_labels replaces them");
    assert_eq!(ids(ImageFilter::new().label("keep", "yes ✓")).await, vec![b.id]);
    let cleared = ok(catalog.set_image_labels(b.id, &Labels::new()).await, "clear");
    assert!(cleared.labels.is_empty());

    let mut update = ready_update("pw");
    if let ImageUpdate::Ready { metadata, .. } = &mut update {
        *metadata = Some(sample_metadata());
    }
    let ready = ok(catalog.update_image(a.id, ImageState::Creating, update).await, "ready");
    assert_eq!(ready.metadata, Some(sample_metadata()), "metadata is on the ready record");
    assert_eq!(ok(catalog.get_image(a.id).await, "get").metadata, Some(sample_metadata()));
    assert_eq!(ok(catalog.get_image(b.id).await, "get").metadata, None, "no metadata before ready");

    match catalog.set_image_labels(ImageId::new(), &gold).await {
        Err(Error::ImageNotFound(_)) => {}
        other => panic!("labels of an unknown image: expected ImageNotFound, got {other:?}"),
    }
}

/// Pages: `limit` rows after `page_token`, oldest first; walking the pages gives the whole list
/// once, also combined with a filter.
pub async fn images_page_in_order<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let source = InstanceId::new();
    let mut all = Vec::new();
    for i in 0..7 {
        let image =
            ok(catalog.reserve_image(OperationId::new(), &new_image(source, &format!("p{i}"))).await, "reserve");
        if i % 2 == 0 {
            ok(catalog.update_image(image.id, ImageState::Creating, ready_update("pw")).await, "ready");
        }
        all.push(image.id);
    }
    for (filter, expected) in [
        (ImageFilter::new(), all.clone()),
        (ImageFilter::new().state(ImageState::Ready), all.iter().step_by(2).copied().collect::<Vec<_>>()),
    ] {
        let mut walked = Vec::new();
        let mut token = None;
        loop {
            let page: Vec<ImageRecord> = ok(catalog.list_images(&filter.clone().limit(3).after(token)).await, "page");
            assert!(page.len() <= 3, "a page holds at most the limit");
            walked.extend(page.iter().map(|r| r.id));
            match page.last() {
                Some(last) if page.len() == 3 => token = Some(last.page_token()),
                _ => break,
            }
        }
        assert_eq!(walked, expected, "walking pages of {filter:?}");
    }
}

/// Instances: labels and restored databases round-trip; lists filter by state, name, source
/// image and labels, and page.
pub async fn instance_labels_and_filters<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let mut first = new_instance("one", InstanceState::Provisioning, "pw").with_labels(labels(&[("env", "prod")]));
    first.databases = Some(vec!["app ✓".into(), "postgres".into()]);
    let one = ok(catalog.create_instance(OperationId::new(), &first).await, "one");
    assert_eq!((one.labels.clone(), one.databases.clone()), (first.labels.clone(), first.databases.clone()));
    assert_eq!(ok(catalog.get_instance(one.id).await, "get").databases, first.databases);
    let two = ok(
        catalog.create_instance(OperationId::new(), &new_instance("two", InstanceState::Running, "pw")).await,
        "two",
    );
    assert_eq!((two.labels.is_empty(), two.databases.clone()), (true, None));

    let ids = |f: InstanceFilter| {
        let catalog = catalog.clone();
        async move { ok(catalog.list_instances(&f).await, "list").into_iter().map(|r| r.id).collect::<Vec<_>>() }
    };
    assert_eq!(ids(InstanceFilter::new()).await, vec![one.id, two.id]);
    assert_eq!(ids(InstanceFilter::new().state(InstanceState::Running)).await, vec![two.id]);
    assert_eq!(ids(InstanceFilter::new().name("one")).await, vec![one.id]);
    assert_eq!(ids(InstanceFilter::new().label("env", "prod")).await, vec![one.id]);
    assert_eq!(ids(InstanceFilter::new().source_image(one.source_image_id.unwrap())).await, vec![one.id]);
    assert_eq!(ids(InstanceFilter::new().limit(1)).await, vec![one.id]);
    assert_eq!(ids(InstanceFilter::new().after(Some(one.page_token()))).await, vec![two.id]);

    let relabelled = ok(catalog.set_instance_labels(two.id, &labels(&[("env", "prod")])).await, "relabel");
    assert_eq!(relabelled.labels, labels(&[("env", "prod")]));
    assert_eq!(ids(InstanceFilter::new().label("env", "prod")).await, vec![one.id, two.id]);
    match catalog.set_instance_labels(InstanceId::new(), &Labels::new()).await {
        Err(Error::InstanceNotFound(_)) => {}
        other => panic!("labels of an unknown instance: expected InstanceNotFound, got {other:?}"),
    }
}
