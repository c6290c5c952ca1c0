//! Image ids and keys beyond the conformance suite: a retried reservation keeps the first id and
//! key, an id already taken is refused, and racing rewraps across connections have one winner.

use std::sync::Arc;
use tokio::sync::Barrier;
use toygres_cms_sqlite::{SqliteCatalog, SqliteOptions};
use toygres_core::crypto::CatalogKey;
use toygres_core::envelope::WrappedKey;
use toygres_core::testing::catalog_suite::{new_image, RACERS};
use toygres_core::{CatalogStore, Error, ImageFilter, ImageId, InstanceId, NewImage, OperationId};

fn wrapped(key_id: &str, byte: u8) -> WrappedKey {
    WrappedKey { provider: "local".into(), key_id: key_id.into(), ciphertext: vec![byte; 72] }
}

fn keyed(id: ImageId, key: WrappedKey) -> NewImage {
    let mut new = new_image(InstanceId::new(), "keyed");
    (new.id, new.encryption) = (Some(id), Some(key));
    new
}

#[tokio::test]
async fn a_retried_reservation_keeps_the_first_id_and_key() {
    let catalog = SqliteCatalog::open_in_memory(CatalogKey::generate()).unwrap();
    let (operation, id) = (OperationId::new(), ImageId::new());
    let mut first = keyed(id, wrapped("k1", 1));
    first.request_digest = Some("digest".into());
    let reserved = catalog.reserve_image(operation, &first).await.unwrap();
    // The pipeline's retry chooses a new id and key each time; the same id again also answers.
    for mut retry in [keyed(ImageId::new(), wrapped("k2", 2)), first.clone()] {
        retry.request_digest = first.request_digest.clone();
        assert_eq!(catalog.reserve_image(operation, &retry).await.unwrap(), reserved);
    }
    assert_eq!(catalog.list_images(&ImageFilter::new()).await.unwrap(), vec![reserved]);
}

#[tokio::test]
async fn an_id_taken_by_another_operation_is_refused() {
    let catalog = SqliteCatalog::open_in_memory(CatalogKey::generate()).unwrap();
    let id = ImageId::new();
    let first = catalog.reserve_image(OperationId::new(), &keyed(id, wrapped("k1", 1))).await.unwrap();
    let second = catalog.reserve_image(OperationId::new(), &keyed(id, wrapped("k2", 2))).await;
    assert!(matches!(second, Err(Error::InvalidRequest { field: "image id", .. })), "{second:?}");
    assert_eq!(catalog.get_image(id).await.unwrap(), first, "the first image is left as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_rewraps_on_a_file_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions { connections: 4, ..SqliteOptions::default() };
    let catalog =
        Arc::new(SqliteCatalog::open_with_options(dir.path().join("c.db"), CatalogKey::generate(), options).unwrap());
    let (id, first) = (ImageId::new(), wrapped("k1", 1));
    catalog.reserve_image(OperationId::new(), &keyed(id, first.clone())).await.unwrap();
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
        match racer.await.unwrap() {
            Ok(record) => winners.push(record.encryption.unwrap()),
            Err(Error::StateConflict { .. }) => {}
            Err(other) => panic!("a racer got {other:?} instead of StateConflict"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rewrap wins");
    assert_eq!(catalog.get_image(id).await.unwrap().encryption, Some(winners.remove(0)), "and its key is kept");
}
