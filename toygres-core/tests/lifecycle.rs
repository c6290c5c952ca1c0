//! The embedder's lifecycle API on real in-memory backends: pages of listings, labels, retention
//! (`expire`, with a dry run and in-use images), cancel, restoring a subset of databases, and
//! reconcile removing blobs nothing owns.

mod support;

use std::time::Duration;
use support::*;
use toygres_core::testing::MockClusterExecutor;
use toygres_core::*;

/// A ready image with `labels`.
async fn labelled_image(fx: &Fixture, t: &Toygres, labels: &[(&str, &str)]) -> ImageRecord {
    let image = fx.ready_image(ImageType::Stock).await;
    let labels: Labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    t.set_image_labels(image.id, labels).await.unwrap()
}

#[tokio::test]
async fn listings_page_and_filter_by_labels() {
    let fx = fixture(ImageType::Stock).await;
    let t = fx.toygres(MockClusterExecutor::new());
    let mut ids = Vec::new();
    for i in 0..5 {
        let tier = if i % 2 == 0 { "gold" } else { "silver" };
        ids.push(labelled_image(&fx, &t, &[("tier", tier)]).await.id);
    }
    let mut walked = Vec::new();
    let mut token = None;
    loop {
        let page = t.list_images(&ImageFilter::new().limit(2).after(token)).await.unwrap();
        assert!(page.items.len() <= 2);
        walked.extend(page.items.iter().map(|i| i.id));
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(walked, ids, "pages walk every image once, oldest first");
    let gold = t.list_images(&ImageFilter::new().label("tier", "gold")).await.unwrap();
    assert_eq!(gold.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![ids[0], ids[2], ids[4]]);
    assert_eq!(gold.next, None);
    let bad: Labels = [("Bad Key".to_string(), "x".to_string())].into();
    assert!(matches!(t.set_image_labels(ids[0], bad).await, Err(Error::InvalidRequest { field: "labels", .. })));
    assert_eq!(t.get_image(ids[0]).await.unwrap().labels.get("tier").map(String::as_str), Some("gold"));
    let token: std::result::Result<PageToken, _> = "not-a-token".parse();
    assert!(matches!(token, Err(Error::InvalidRequest { field: "page_token", .. })));
}

#[tokio::test]
async fn expire_keeps_what_the_policy_keeps_and_images_in_use() {
    let fx = fixture(ImageType::Stock).await;
    let mut executor = MockClusterExecutor::new();
    executor.expect_delete_job().returning(|_| Ok(()));
    executor.expect_delete_image().returning(|_| Ok(()));
    let t = fx.toygres(executor);
    let oldest = labelled_image(&fx, &t, &[("keep", "yes")]).await;
    let in_use = labelled_image(&fx, &t, &[]).await;
    let old = labelled_image(&fx, &t, &[]).await;
    let newest = [labelled_image(&fx, &t, &[]).await, labelled_image(&fx, &t, &[]).await];
    let restoring = NewInstance::restored("restoring", &in_use, Password::new(SOURCE_PW));
    fx.catalog.create_instance(OperationId::new(), &restoring).await.unwrap();

    let none = RetentionPolicy::for_source(fx.source.id);
    assert!(matches!(t.expire(&none, true).await, Err(Error::InvalidRequest { field: "policy", .. })));

    let policy = RetentionPolicy::for_source(fx.source.id).keep_last(2).keep_labelled("keep", "yes");
    let dry = t.expire(&policy, true).await.unwrap();
    assert_eq!((dry.deleted.clone(), dry.in_use.clone(), dry.dry_run), (vec![old.id], vec![in_use.id], true));
    assert_eq!(t.list_images(&ImageFilter::new()).await.unwrap().items.len(), 5, "a dry run deletes nothing");

    let done = t.expire(&policy, false).await.unwrap();
    assert_eq!((done.deleted, done.in_use), (vec![old.id], vec![in_use.id]));
    assert!(matches!(t.get_image(old.id).await, Err(Error::ImageNotFound(_))));
    assert!(fx.blobs.stat(&ImageLocation::for_image(old.id)).await.unwrap().is_empty(), "its blobs are gone");
    for kept in [&oldest, &in_use, &newest[0], &newest[1]] {
        assert_eq!(t.get_image(kept.id).await.unwrap().state, ImageState::Ready);
    }
    let young = RetentionPolicy::for_source(fx.source.id).keep_younger_than(Duration::from_secs(3600));
    assert!(t.expire(&young, false).await.unwrap().deleted.is_empty(), "every image is younger than an hour");
}

#[tokio::test]
async fn cancel_fails_a_creating_image_and_removes_its_blobs() {
    let fx = fixture(ImageType::Stock).await;
    let mut executor = MockClusterExecutor::new();
    executor.expect_delete_job().times(2).returning(|_| Ok(()));
    executor.expect_delete_image().returning(|_| Ok(()));
    let t = fx.toygres(executor);
    let creating = fx.catalog.reserve_image(OperationId::new(), &NewImage::new("stuck", fx.source.id)).await.unwrap();
    fx.write_image(creating.id, ImageType::Stock).await;
    assert!(matches!(t.delete_image(creating.id).await, Err(Error::InvalidTransition { .. })));

    let cancelled = t.cancel_image(creating.id).await.unwrap();
    assert_eq!(cancelled.state, ImageState::Failed);
    assert!(cancelled.failure_reason.unwrap().contains("was cancelled"));
    assert!(fx.blobs.stat(&ImageLocation::for_image(creating.id)).await.unwrap().is_empty());
    assert_eq!(t.cancel_image(creating.id).await.unwrap().state, ImageState::Failed, "cancel again: idempotent");
    t.delete_image(creating.id).await.unwrap();

    let ready = fx.ready_image(ImageType::Stock).await;
    let err = t.cancel_image(ready.id).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTransition { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Conflict);
}

#[tokio::test]
async fn cancel_fails_a_provisioning_instance_and_removes_its_resources() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    let mut executor = MockClusterExecutor::new();
    executor.expect_delete_job().returning(|_| Ok(()));
    executor.expect_delete_instance().times(1).returning(|_| Ok(()));
    let t = fx.toygres(executor);
    let new = NewInstance::restored("half", &image, Password::new(SOURCE_PW));
    let instance = fx.catalog.create_instance(OperationId::new(), &new).await.unwrap();
    let cancelled = t.cancel_instance(instance.id).await.unwrap();
    assert_eq!(cancelled.state, InstanceState::Failed);
    assert!(cancelled.failure_reason.unwrap().contains("was cancelled"));
    assert!(matches!(t.cancel_instance(fx.source.id).await, Err(Error::InvalidTransition { .. })));
}

#[tokio::test]
async fn unknown_databases_are_refused_before_anything_is_created() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    let mut executor = MockClusterExecutor::new();
    executor.expect_verifies_while_restoring().return_const(false);
    executor.expect_check_restorable().returning(|_| Ok(()));
    let t = fx.toygres(executor);
    let request = CreateInstanceRequest::restore("subset", image.id).with_databases(["app", "nope"]);
    let err = t.create_instance(OperationId::new(), request).await.unwrap_err();
    match &err {
        Error::InvalidRequest { field: "databases", reason } => {
            assert!(reason.contains("\"nope\"") && reason.contains("\"app\""), "{reason}")
        }
        other => panic!("expected InvalidRequest on databases, got {other}"),
    }
    let twice = CreateInstanceRequest::restore("subset", image.id).with_databases(["app", "app"]);
    assert!(matches!(t.create_instance(OperationId::new(), twice).await, Err(Error::InvalidRequest { .. })));
    let instances = t.list_instances(&InstanceFilter::new()).await.unwrap().items;
    assert_eq!(instances.len(), 1, "only the source exists: {instances:?}");
}

#[tokio::test]
async fn reconcile_removes_blobs_without_a_live_record() {
    let fx = fixture(ImageType::Stock).await;
    let mut executor = MockClusterExecutor::new();
    executor.expect_list_instances().returning(|| Ok(vec![]));
    executor.expect_list_images().returning(|| Ok(vec![]));
    executor.expect_delete_image().returning(|_| Ok(()));
    let t = fx.toygres(executor);
    let ready = fx.ready_image(ImageType::Stock).await;
    let orphan = ImageId::new();
    fx.write_image(orphan, ImageType::Stock).await;
    let failed = fx.catalog.reserve_image(OperationId::new(), &NewImage::new("f", fx.source.id)).await.unwrap();
    fx.write_image(failed.id, ImageType::Stock).await;
    fx.catalog.update_image(failed.id, ImageState::Creating, ImageUpdate::Failed { reason: "x".into() }).await.unwrap();
    let creating = fx.catalog.reserve_image(OperationId::new(), &NewImage::new("c", fx.source.id)).await.unwrap();
    fx.write_image(creating.id, ImageType::Stock).await;

    let report = t.reconcile().await.unwrap();
    let mut expected = vec![orphan, failed.id];
    expected.sort();
    let mut removed = report.orphan_images.clone();
    removed.sort();
    assert_eq!(removed, expected, "{report:?}");
    let mut left = fx.blobs.list_images().await.unwrap();
    left.sort();
    let mut kept = vec![ready.id, creating.id];
    kept.sort();
    assert_eq!(left, kept, "a ready and a creating image keep their blobs");
    assert!(t.reconcile().await.unwrap().is_empty());
}
