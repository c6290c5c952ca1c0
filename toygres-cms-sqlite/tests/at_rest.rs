//! Passwords at rest: the raw columns and the file bytes never hold a plain password, the wrong
//! key is a typed error, not garbage, and a sealed password opens only in its own record's row.

use rusqlite::Connection;
use std::path::Path;
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::{image_record, instance_record, CatalogKey};
use toygres_core::testing::catalog_suite::{new_image, new_instance, ready_update};
use toygres_core::{CatalogStore, Error, ImageState, InstanceId, InstanceState, OperationId};

const IMAGE_PW: &str = "image-plaintext-Zq81";
const INSTANCE_PW: &str = "instance-plaintext-Kx42";

/// A file catalog with one ready image and one instance, each with a known password.
async fn populated(path: &Path, key: &CatalogKey) -> (toygres_core::ImageId, InstanceId) {
    let catalog = SqliteCatalog::open(path, key.clone()).unwrap();
    let image = catalog.reserve_image(OperationId::new(), &new_image(InstanceId::new(), "img")).await.unwrap();
    catalog.update_image(image.id, ImageState::Creating, ready_update(IMAGE_PW)).await.unwrap();
    let new = new_instance("inst", InstanceState::Provisioning, INSTANCE_PW);
    let instance = catalog.create_instance(OperationId::new(), &new).await.unwrap();
    (image.id, instance.id)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn raw_columns_and_file_bytes_hold_no_plain_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let key = CatalogKey::generate();
    let (image, instance) = populated(&path, &key).await;

    let raw = Connection::open(&path).unwrap();
    let image_col: Vec<u8> =
        raw.query_row("SELECT source_password FROM images WHERE id = ?1", [image.to_string()], |r| r.get(0)).unwrap();
    let instance_col: Vec<u8> =
        raw.query_row("SELECT password FROM instances WHERE id = ?1", [instance.to_string()], |r| r.get(0)).unwrap();
    assert!(!contains(&image_col, IMAGE_PW), "image password stored in plain text");
    assert!(!contains(&instance_col, INSTANCE_PW), "instance password stored in plain text");
    assert!(image_col.len() > IMAGE_PW.len() + 24, "sealed value must carry a nonce and a tag");
    assert_eq!(key.open_for(&image_col, &image_record(image)).unwrap().expose(), IMAGE_PW, "the sealed password");
    assert_eq!(key.open_for(&instance_col, &instance_record(instance)).unwrap().expose(), INSTANCE_PW);
    assert!(key.open(&image_col).is_err(), "sealed bound to its record, not unbound");
    let all_text: String =
        raw.query_row("SELECT group_concat(quote(value), ' ') FROM catalog_meta", [], |r| r.get(0)).unwrap();
    assert!(!all_text.contains(&key.to_hex()), "the key must never enter the database");
    drop(raw);

    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!contains(&bytes, IMAGE_PW) && !contains(&bytes, INSTANCE_PW), "plain password in the file or WAL");
        assert!(!contains(&bytes, &key.to_hex()), "key in the file or WAL");
    }
}

#[tokio::test]
async fn another_key_is_refused_with_wrong_key_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    populated(&path, &CatalogKey::generate()).await;
    match SqliteCatalog::open(&path, CatalogKey::generate()) {
        Err(e @ Error::WrongKey) => assert!(e.to_string().contains("configure the key"), "{e}"),
        other => panic!("expected WrongKey, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tampered_sealed_password_is_wrong_key_not_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let key = CatalogKey::generate();
    let (image, instance) = populated(&path, &key).await;
    let raw = Connection::open(&path).unwrap();
    // Swap in a value sealed with another key, and flip a byte of the other one.
    let foreign = CatalogKey::generate().seal_for(&toygres_core::Password::new(IMAGE_PW), &image_record(image));
    raw.execute("UPDATE images SET source_password = ?1 WHERE id = ?2", (foreign, image.to_string())).unwrap();
    let mut sealed: Vec<u8> =
        raw.query_row("SELECT password FROM instances WHERE id = ?1", [instance.to_string()], |r| r.get(0)).unwrap();
    *sealed.last_mut().unwrap() ^= 0x01;
    raw.execute("UPDATE instances SET password = ?1 WHERE id = ?2", (sealed, instance.to_string())).unwrap();
    drop(raw);

    let catalog = SqliteCatalog::open(&path, key).unwrap();
    assert!(matches!(catalog.image_source_password(image).await, Err(Error::WrongKey)));
    assert!(matches!(catalog.instance_password(instance).await, Err(Error::WrongKey)));
}

#[tokio::test]
async fn a_sealed_password_moved_to_another_row_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let key = CatalogKey::generate();
    let (image_a, instance_a) = populated(&path, &key).await;
    let catalog = SqliteCatalog::open(&path, key.clone()).unwrap();
    let image_b = catalog.reserve_image(OperationId::new(), &new_image(InstanceId::new(), "img-b")).await.unwrap().id;
    catalog.update_image(image_b, ImageState::Creating, ready_update("image-b-pw")).await.unwrap();
    let new = new_instance("inst-b", InstanceState::Provisioning, "instance-b-pw");
    let instance_b = catalog.create_instance(OperationId::new(), &new).await.unwrap().id;

    // Whoever can write the file copies A's sealed bytes over B's.
    let raw = Connection::open(&path).unwrap();
    let moved = raw
        .execute(
            "UPDATE images SET source_password = (SELECT source_password FROM images WHERE id = ?1) WHERE id = ?2",
            [image_a.to_string(), image_b.to_string()],
        )
        .unwrap();
    assert_eq!(moved, 1);
    let moved = raw
        .execute(
            "UPDATE instances SET password = (SELECT password FROM instances WHERE id = ?1) WHERE id = ?2",
            [instance_a.to_string(), instance_b.to_string()],
        )
        .unwrap();
    assert_eq!(moved, 1);
    drop(raw);

    let image = catalog.image_source_password(image_b).await;
    assert!(matches!(image, Err(Error::WrongKey)), "image B must refuse A's sealed password: {image:?}");
    let instance = catalog.instance_password(instance_b).await;
    assert!(matches!(instance, Err(Error::WrongKey)), "instance B must refuse A's sealed password: {instance:?}");
    assert_eq!(catalog.image_source_password(image_a).await.unwrap().expose(), IMAGE_PW, "A's still opens");
    assert_eq!(catalog.instance_password(instance_a).await.unwrap().expose(), INSTANCE_PW, "A's still opens");
}
