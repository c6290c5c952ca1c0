//! Conformance properties of image keys: the catalog keeps the id it is given and the wrapped
//! data key, and rewraps it only as a compare-and-set.

use super::{new_image, ok, ready_update, RACERS};
use crate::catalog::CatalogStore;
use crate::envelope::WrappedKey;
use crate::error::Error;
use crate::ids::{ImageId, InstanceId, OperationId};
use crate::image::ImageUpdate;
use crate::state::ImageState;
use std::sync::Arc;
use tokio::sync::Barrier;

fn wrapped(key_id: &str, byte: u8) -> WrappedKey {
    WrappedKey { provider: "local".into(), key_id: key_id.into(), ciphertext: vec![byte; 72] }
}

/// A new image to be reserved under `id` with `key`, bound to one request digest.
fn keyed(id: ImageId, key: WrappedKey) -> crate::image::NewImage {
    let mut new = new_image(InstanceId::new(), "keyed");
    (new.id, new.encryption, new.request_digest) = (Some(id), Some(key), Some("digest".into()));
    new
}

/// An image reserved with an id and a wrapped key keeps both through its lifecycle (an id taken
/// by another operation is refused, nothing overwritten); a rewrap
/// applies only while the key is still the expected one; a plaintext image has none to rewrap;
/// a deleted image is gone.
pub async fn image_keys_are_recorded_and_rewrapped<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let (id, first) = (ImageId::new(), wrapped("k1", 1));
    let new = keyed(id, first.clone());
    let record = ok(catalog.reserve_image(OperationId::new(), &new).await, "reserve with an id and key");
    assert_eq!((record.id, record.encryption.as_ref()), (id, Some(&first)), "the id and key given are kept");
    // The pipeline's retry chooses a new id and key each time: the first record answers.
    for retry in [keyed(ImageId::new(), wrapped("k9", 9)), new.clone()] {
        let again = ok(catalog.reserve_image(record.operation_id, &retry).await, "reserve again");
        assert_eq!(again, record, "a retried reservation returns the first record");
    }
    let taken = catalog.reserve_image(OperationId::new(), &keyed(id, wrapped("k8", 8))).await;
    assert!(matches!(taken, Err(Error::InvalidRequest { .. })), "an id taken by another operation: {taken:?}");
    assert_eq!(ok(catalog.get_image(id).await, "get"), record, "the taken id's image is left as it was");
    let ready = ok(catalog.update_image(id, ImageState::Creating, ready_update("pw")).await, "ready");
    assert_eq!(ready.encryption.as_ref(), Some(&first), "becoming ready keeps the key");

    let second = wrapped("k2", 2);
    let rewrapped = ok(catalog.rewrap_image_key(id, &first, &second).await, "rewrap");
    assert_eq!(rewrapped.encryption.as_ref(), Some(&second));
    assert_eq!(ok(catalog.get_image(id).await, "get").encryption, Some(second.clone()), "the rewrap is stored");
    let stale = catalog.rewrap_image_key(id, &first, &wrapped("k3", 3)).await;
    assert!(matches!(stale, Err(Error::StateConflict { .. })), "a stale rewrap is refused: {stale:?}");
    assert_eq!(ok(catalog.get_image(id).await, "get").encryption, Some(second.clone()), "and changes nothing");

    let plain = ok(catalog.reserve_image(OperationId::new(), &new_image(InstanceId::new(), "plain")).await, "reserve");
    assert_eq!(plain.encryption, None, "an image reserved without a key is recorded as plaintext");
    let refused = catalog.rewrap_image_key(plain.id, &first, &second).await;
    assert!(matches!(refused, Err(Error::InvalidRequest { .. })), "{refused:?}");
    let unknown = catalog.rewrap_image_key(ImageId::new(), &first, &second).await;
    assert!(matches!(unknown, Err(Error::ImageNotFound(_))), "{unknown:?}");

    ok(catalog.update_image(id, ImageState::Ready, ImageUpdate::Deleting).await, "deleting");
    ok(catalog.update_image(id, ImageState::Deleting, ImageUpdate::Deleted).await, "deleted");
    let gone = catalog.rewrap_image_key(id, &second, &first).await;
    assert!(matches!(gone, Err(Error::ImageNotFound(_))), "a deleted image is not rewrapped: {gone:?}");
}

/// Racing rewraps of one image from the same expected key: exactly one wins, the others are
/// `StateConflict`, and the winner's key is the one kept.
pub async fn racing_rewraps_have_one_winner<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let (id, first) = (ImageId::new(), wrapped("k1", 1));
    ok(catalog.reserve_image(OperationId::new(), &keyed(id, first.clone())).await, "reserve");
    let barrier = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (catalog, barrier, first) = (catalog.clone(), barrier.clone(), first.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                catalog.rewrap_image_key(id, &first, &wrapped(&format!("racer-{i}"), i as u8)).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.expect("a racer panicked") {
            Ok(record) => winners.push(record.encryption.expect("a rewrapped image has a key")),
            Err(Error::StateConflict { .. }) => {}
            Err(other) => panic!("a racer got {other:?} instead of StateConflict"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rewrap wins");
    assert_eq!(ok(catalog.get_image(id).await, "get").encryption, Some(winners.remove(0)), "its key is kept");
}
