//! The conformance suite every [`BlobStore`] runs: one definition of "behaves like a blob store".
//!
//! [`run_all`] takes a store that may already hold other images (a shared emulator container):
//! every property works on new image ids and only looks at those.
//!
//! What the suite holds a store to:
//! - `write` then `read` returns the bytes; `read_stream` streams the same bytes (also for an
//!   object of several MiB); writing again replaces the object;
//! - `stat` lists exactly the image's objects, sorted by name, with their sizes, nested names
//!   included, and nothing of another image whose id shares a prefix of the location;
//! - a missing object is [`Error::ImageIncomplete`] for `read` and `read_stream`;
//! - `list_images` lists every image with an object, and no longer lists a deleted one;
//! - `delete` removes every object of the image and only those; deleting again, or an image that
//!   never existed, succeeds; `remove_staging` on a finished image removes nothing it lists.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! toygres_core::testing::blob_suite::run_all(&toygres_core::ObjectStoreBlobs::in_memory()).await;
//! # });
//! ```

use crate::blob::{BlobStore, ImageLocation};
use crate::error::Error;
use crate::ids::ImageId;
use bytes::Bytes;
use futures::TryStreamExt;

fn ok<T>(result: crate::Result<T>, what: &str, store: &dyn BlobStore) -> T {
    result.unwrap_or_else(|e| panic!("{} ({what}): {e}", store.describe()))
}

/// Runs every property on `store`; panics with the store's description and what broke.
pub async fn run_all(store: &dyn BlobStore) {
    objects_round_trip(store).await;
    missing_objects_are_incomplete(store).await;
    delete_removes_one_image_only(store).await;
    delete_objects_removes_the_named_ones(store).await;
}

/// Bytes written are the bytes read, whole and streamed; `stat` lists names and sizes sorted.
pub async fn objects_round_trip(store: &dyn BlobStore) {
    let loc = ImageLocation::for_image(ImageId::new());
    let big: Bytes = (0..(5u32 << 20) / 4).flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()).collect();
    ok(store.write(&loc, "manifest.json", Bytes::from_static(b"{\"a\": 1}")).await, "write", store);
    ok(store.write(&loc, "db-0001.dump.zst", big.clone()).await, "write big", store);
    ok(store.write(&loc, "db-0000.dump.zst", Bytes::from_static(b"first")).await, "write", store);
    ok(store.write(&loc, "db-0000.dump.zst", Bytes::from_static(b"replaced")).await, "overwrite", store);
    ok(store.write(&loc, "nested/part.bin", Bytes::from_static(b"n")).await, "write nested", store);
    assert_eq!(ok(store.read(&loc, "db-0000.dump.zst").await, "read", store), Bytes::from_static(b"replaced"));
    let streamed: Vec<Bytes> =
        ok(ok(store.read_stream(&loc, "db-0001.dump.zst").await, "stream", store).try_collect().await, "chunks", store);
    assert_eq!(streamed.concat(), big.to_vec(), "{}: streamed bytes differ", store.describe());
    let listed: Vec<(String, u64)> =
        ok(store.stat(&loc).await, "stat", store).into_iter().map(|o| (o.name, o.size)).collect();
    let expected = vec![
        ("db-0000.dump.zst".to_string(), 8),
        ("db-0001.dump.zst".to_string(), big.len() as u64),
        ("manifest.json".to_string(), 8),
        ("nested/part.bin".to_string(), 1),
    ];
    assert_eq!(listed, expected, "{}: stat lists every object, sorted", store.describe());
    assert!(ok(store.list_images().await, "list", store).contains(&loc.image_id), "{}", store.describe());
    ok(store.delete(&loc).await, "delete", store);
}

/// Reading what is not there is `ImageIncomplete`, not a backend error.
pub async fn missing_objects_are_incomplete(store: &dyn BlobStore) {
    let loc = ImageLocation::for_image(ImageId::new());
    assert!(ok(store.stat(&loc).await, "stat of nothing", store).is_empty());
    match store.read(&loc, "manifest.json").await {
        Err(Error::ImageIncomplete { image, .. }) if image == loc.image_id => {}
        other => panic!("{}: read of a missing object: expected ImageIncomplete, got {other:?}", store.describe()),
    }
    match store.read_stream(&loc, "manifest.json").await {
        Err(Error::ImageIncomplete { .. }) => {}
        Err(other) => panic!("{}: stream of a missing object: expected ImageIncomplete, got {other}", store.describe()),
        Ok(_) => panic!("{}: stream of a missing object succeeded", store.describe()),
    }
    ok(store.delete(&loc).await, "delete of nothing", store);
}

/// Deleting one image removes all of its objects and nothing of another; it is idempotent.
pub async fn delete_removes_one_image_only(store: &dyn BlobStore) {
    let (a, b) = (ImageLocation::for_image(ImageId::new()), ImageLocation::for_image(ImageId::new()));
    for loc in [&a, &b] {
        for name in ["globals.sql.zst", "db-0000.dump.zst", "manifest.json"] {
            ok(store.write(loc, name, Bytes::from_static(b"x")).await, "write", store);
        }
    }
    assert!(ok(store.remove_staging(&a).await, "remove_staging", store).is_empty(), "a finished image has no staging");
    ok(store.delete(&a).await, "delete", store);
    ok(store.delete(&a).await, "delete again", store);
    assert!(ok(store.stat(&a).await, "stat", store).is_empty(), "{}: delete left objects", store.describe());
    assert_eq!(ok(store.stat(&b).await, "stat", store).len(), 3, "{}: delete touched another image", store.describe());
    let listed = ok(store.list_images().await, "list", store);
    assert!(!listed.contains(&a.image_id) && listed.contains(&b.image_id), "{}: {listed:?}", store.describe());
    ok(store.delete(&b).await, "delete", store);
}

/// `delete_objects` removes exactly the named objects (absent ones are skipped), under any
/// prefix (a WAL archive's `wal/<instance>`), and is not mistaken for an image by `list_images`.
pub async fn delete_objects_removes_the_named_ones(store: &dyn BlobStore) {
    let archive = crate::wal::WalArchive::of(crate::InstanceId::new()).location();
    for name in ["000000010000000000000001", "000000010000000000000002", "head.json"] {
        ok(store.write(&archive, name, Bytes::from_static(b"w")).await, "write", store);
    }
    let names = ["000000010000000000000001".to_string(), "000000010000000000000009".to_string()];
    ok(store.delete_objects(&archive, &names).await, "delete_objects", store);
    let left: Vec<String> = ok(store.stat(&archive).await, "stat", store).into_iter().map(|o| o.name).collect();
    assert_eq!(left, ["000000010000000000000002", "head.json"], "{}: delete_objects", store.describe());
    let listed = ok(store.list_images().await, "list", store);
    assert!(!listed.contains(&archive.image_id), "{}: an archive is not an image", store.describe());
    ok(store.delete(&archive).await, "delete", store);
    assert!(ok(store.stat(&archive).await, "stat", store).is_empty(), "{}", store.describe());
}
