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

/// A process of the server's OS user (which any tenant can run, `COPY … FROM PROGRAM`) plants
/// links in every instance's data directory, over and over, while a physical image is restored
/// by root: the unpack never writes through one (the data directory is root's until the image is
/// in), the restore completes, and the link's target stays empty.
#[test]
fn links_planted_while_a_physical_restore_unpacks_are_never_followed() {
    use std::os::unix::process::CommandExt;
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("planted", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "linked-source", &password).await.unwrap();
        let image = t.create_image(OperationId::new(), CreateImageRequest::new("phys", source.id).physical());
        let image = image.await.unwrap();

        let user = executor.cluster(&source.spec()).unwrap().server_user().clone();
        let target = world.base.path().join("attacker");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::chown(&target, Some(user.uid), Some(user.gid)).unwrap();
        let instances = world.base.path().join("planted").join("instances");
        let script = format!(
            "while :; do for d in {}/*/*/data; do for n in base global pg_wal; do ln -s {} \"$d/$n\" 2>/dev/null; done; done; done",
            instances.display(),
            target.display()
        );
        let mut attacker = std::process::Command::new("sh").args(["-c", &script]).uid(user.uid).gid(user.gid).spawn().unwrap();
        let restored = t.create_instance(OperationId::new(), CreateInstanceRequest::restore("linked-copy", image.id)).await;
        attacker.kill().unwrap();
        attacker.wait().unwrap();

        let planted: Vec<_> = std::fs::read_dir(&target).unwrap().map(|e| e.unwrap().path()).collect();
        assert!(planted.is_empty(), "the unpack wrote through a planted link: {planted:?}");
        let restored = restored.expect("the restore completes");
        let client = executor.cluster(&restored.spec()).unwrap().connect("postgres", &password).await.unwrap();
        client.simple_query("SELECT 1").await.unwrap();
    });
}
