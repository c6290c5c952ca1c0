//! Images forged by whoever can write the blob store and the catalog (checksums recomputed, so
//! verification passes): the restore runs no client command from them, refuses them with a
//! typed error, and leaves nothing behind.

#[path = "local/support.rs"]
mod support;
#[path = "local/world.rs"]
mod world;

use bytes::Bytes;
use support::rt;
use toygres_core::manifest::{sha256_hex, MANIFEST_NAME};
use toygres_core::{BlobStore, CatalogStore, CreateImageRequest, CreateInstanceRequest, Error, ImageLocation};
use toygres_core::{ImageRecord, ImageState, ImageUpdate, Manifest, NewImage, OperationId, Password};
use world::World;

/// A copy of `image` under a new id, its globals rewritten by `edit`, with every checksum (the
/// object's in the manifest, the manifest's in the catalog) made to match.
async fn forge(
    world: &World,
    image: &ImageRecord,
    password: &Password,
    edit: impl FnOnce(&str) -> String,
) -> ImageRecord {
    let from = ImageLocation::for_image(image.id);
    let mut manifest = Manifest::from_bytes(image.id, &world.blobs.read(&from, MANIFEST_NAME).await.unwrap()).unwrap();
    let new = NewImage::new("forged", image.source_instance_id);
    let forged = world.catalog.reserve_image(OperationId::new(), &new).await.unwrap();
    let to = ImageLocation::for_image(forged.id);
    for object in manifest.objects() {
        let bytes = world.blobs.read(&from, &object.name).await.unwrap();
        world.blobs.write(&to, &object.name, bytes).await.unwrap();
    }
    let globals = zstd::decode_all(&world.blobs.read(&from, &manifest.globals.name).await.unwrap()[..]).unwrap();
    let edited = edit(&String::from_utf8(globals).unwrap());
    let stored = zstd::encode_all(edited.as_bytes(), 3).unwrap();
    manifest.globals.size = stored.len() as u64;
    manifest.globals.sha256 = sha256_hex(&stored);
    manifest.globals.raw_size = Some(edited.len() as u64);
    world.blobs.write(&to, &manifest.globals.name, Bytes::from(stored)).await.unwrap();
    manifest.image_id = forged.id;
    let bytes = manifest.to_bytes();
    world.blobs.write(&to, MANIFEST_NAME, Bytes::from(bytes.clone())).await.unwrap();
    let ready = ImageUpdate::Ready {
        size_bytes: image.size_bytes.unwrap(),
        checksum: sha256_hex(&bytes),
        pg_version: image.pg_version.clone().unwrap(),
        image_type: image.image_type,
        source_password: password.clone(),
        metadata: None,
    };
    world.catalog.update_image(forged.id, ImageState::Creating, ready).await.unwrap()
}

/// `\! touch <file>` in the globals: psql would run it as the user running psql (root for the
/// control plane). The restore is refused as corrupt, the file never appears, and the failed
/// instance leaves no volume.
#[test]
fn an_image_whose_sql_carries_a_psql_meta_command_runs_nothing_and_is_refused() {
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("hostile", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "victim", &password).await.unwrap();
        let image = t.create_image(OperationId::new(), CreateImageRequest::new("honest", source.id)).await.unwrap();
        let marker = world.base.path().join("meta-command-ran");
        let forged =
            forge(&world, &image, &password, |globals| format!("\\! touch {}\n{globals}", marker.display())).await;

        let restored = t.create_instance(OperationId::new(), CreateInstanceRequest::restore("forged-copy", forged.id));
        let err = restored.await.unwrap_err();
        assert!(err.to_string().contains("meta-command"), "{err}");
        assert!(!matches!(err, Error::Backend { .. }), "a forged image is not a backend failure: {err:?}");
        assert!(!marker.exists(), "the image's meta-command ran");
        let record = world.catalog.list_instances(&Default::default()).await.unwrap();
        let copy = record.iter().find(|r| r.name == "forged-copy");
        assert!(copy.is_none_or(|r| r.state.to_string() == "failed"), "{copy:?}");
        let volumes = executor.instance_clusters();
        assert_eq!(volumes.len(), 1, "only the source's volume is left: {volumes:?}");
    });
}
