//! Key rotation over the in-memory catalog with local key files: every image's data key is
//! rewrapped, each still opens its image, the old key can then go, and a second run finds
//! nothing to do.

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use toygres_core::envelope::{KeyProvider, LocalKeys};
use toygres_core::testing::MockClusterExecutor;
use toygres_core::*;

#[tokio::test]
async fn rotation_rewraps_every_image_and_frees_the_old_key() {
    let dir = std::env::temp_dir().join(format!("toygres-rotation-{}", ImageId::new()));
    let mut fx = fixture(ImageType::Stock).await;
    fx.keys = Arc::new(LocalKeys::open_or_create(&dir).unwrap());
    let old = fx.keys.current_key_id().await.unwrap();
    let mut images = Vec::new();
    for _ in 0..5 {
        images.push(fx.ready_image(ImageType::Stock).await);
    }
    let mut ex = MockClusterExecutor::new();
    ex.expect_verifies_while_restoring().return_const(false);
    ex.expect_check_restorable().returning(|_| Ok(()));
    let t = fx.toygres(ex);
    let opened_before: Vec<_> = {
        let mut keys = Vec::new();
        for image in &images {
            keys.push(t.data_key(image).await.unwrap().unwrap());
        }
        keys
    };
    assert_eq!(t.key_usage().await.unwrap().get(&old), Some(&5));

    let new = fx.keys.new_key().unwrap();
    let mut steps = Vec::new();
    let report = t.rotate_keys(Duration::ZERO, |step| steps.push(step.clone())).await.unwrap();
    assert_eq!((report.key_id.as_str(), report.rewrapped, report.failed.len()), (new.as_str(), 5, 0));
    assert_eq!(steps.last().map(|s| (s.done, s.total)), Some((5, 5)));
    assert_eq!(t.key_usage().await.unwrap().into_iter().collect::<Vec<_>>(), vec![(new.clone(), 5)]);

    fx.keys.remove_key(&old).unwrap();
    for (image, before) in images.iter().zip(&opened_before) {
        let record = fx.catalog.get_image(image.id).await.unwrap();
        assert_eq!(record.encryption.as_ref().unwrap().key_id, new);
        assert_eq!(&t.data_key(&record).await.unwrap().unwrap(), before, "the same data key, rewrapped");
        // Still restorable: the admission's verification opens the manifest under the key.
        t.restore().verify_image(&record).await.unwrap_or_else(|e| panic!("image {} after rotation: {e}", image.id));
    }
    let again = t.rotate_keys(Duration::ZERO, |_| {}).await.unwrap();
    assert_eq!((again.rewrapped, again.already_current), (0, 5), "a second run has nothing to do");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_image_whose_key_is_gone_is_reported_and_the_rest_rotate() {
    let dir = std::env::temp_dir().join(format!("toygres-rotation-{}", ImageId::new()));
    let mut fx = fixture(ImageType::Stock).await;
    fx.keys = Arc::new(LocalKeys::open_or_create(&dir).unwrap());
    let lost = fx.ready_image(ImageType::Stock).await;
    let first = fx.keys.current_key_id().await.unwrap();
    fx.keys.new_key().unwrap();
    let kept = fx.ready_image(ImageType::Stock).await;
    fx.keys.new_key().unwrap();
    std::fs::remove_file(dir.join(format!("{first}.key"))).unwrap();
    let t = fx.toygres(MockClusterExecutor::new());
    let report = t.rotate_keys(Duration::ZERO, |_| {}).await.unwrap();
    assert_eq!(report.rewrapped, 1);
    assert_eq!(report.failed.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![lost.id]);
    assert!(report.failed[0].1.contains(&first), "the error names the missing key: {}", report.failed[0].1);
    assert!(t.data_key(&fx.catalog.get_image(kept.id).await.unwrap()).await.is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn without_a_key_nothing_is_imaged_and_nothing_recorded() {
    let fx = fixture(ImageType::Stock).await;
    let t = Toygres::new(fx.catalog.clone(), fx.blobs.clone(), Arc::new(MockClusterExecutor::new()));
    let mut ex = MockClusterExecutor::new();
    ex.expect_check_source().returning(|_, _, _| Ok(()));
    let t = Toygres { executor: Arc::new(ex), ..t };
    let err = t.create_image(OperationId::new(), CreateImageRequest::new("nightly", fx.source.id)).await.unwrap_err();
    assert!(matches!(err, Error::KeyUnavailable { .. }), "{err}");
    assert!(err.to_string().contains("with_plaintext_images"), "the error says what to do: {err}");
    assert!(fx.catalog.list_images(&ImageFilter::default()).await.unwrap().is_empty(), "nothing recorded");

    // A provider that cannot wrap (its key file is gone) fails closed the same way.
    let dir = std::env::temp_dir().join(format!("toygres-failclosed-{}", ImageId::new()));
    let keys = LocalKeys::open_or_create(&dir).unwrap();
    std::fs::remove_file(dir.join(format!("{}.key", keys.current_key_id().await.unwrap()))).unwrap();
    let t = t.with_image_keys(Arc::new(keys));
    let err = t.create_image(OperationId::new(), CreateImageRequest::new("nightly", fx.source.id)).await.unwrap_err();
    assert!(matches!(err, Error::KeyUnavailable { .. }), "{err}");
    assert!(fx.catalog.list_images(&ImageFilter::default()).await.unwrap().is_empty(), "nothing recorded");

    // Plaintext only when asked for, and the record says so.
    let plain = fx.ready_image(ImageType::Stock).await;
    assert!(plain.encryption.is_some(), "the fixture's images are encrypted");
    std::fs::remove_dir_all(&dir).unwrap();
}
