//! Images forged by whoever can write the blob store and the catalog (checksums recomputed, so
//! verification passes): the restore runs no client command from them, refuses them with a
//! typed error, and leaves nothing behind. Only plaintext images can be forged so (an encrypted
//! one needs its key: `tests/encryption.rs`); these defences hold for both.

#[path = "local/command_blobs.rs"]
mod command_blobs;
#[path = "local/support.rs"]
mod support;
#[path = "local/world.rs"]
mod world;

use bytes::Bytes;
use command_blobs::CommandBlobs;
use std::sync::Arc;
use support::rt;

use toygres_core::manifest::{sha256_hex, MANIFEST_NAME};
use toygres_core::{BlobStore, CatalogStore, CreateImageRequest, CreateInstanceRequest, Error, ImageLocation};
use toygres_core::{CommandTransfer, Toygres, Transfer};
use toygres_core::{ImageRecord, ImageState, ImageUpdate, Manifest, NewImage, OperationId, Password};
use toygres_local::fidelity::{sample::load_sample_data, InstanceSnapshot};
use toygres_local::{LocalBlobStore, LocalExecutor};
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
        // A plaintext image: an encrypted one cannot be forged without its key (tests/encryption.rs).
        let plain = t.clone().with_plaintext_images();
        let image = plain.create_image(OperationId::new(), CreateImageRequest::new("honest", source.id)).await.unwrap();
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

/// The local blob store, read by jobs through `sh`: the first download of an object gives its
/// bytes, every later one gives 4 KiB of garbage (a blob writer rewriting it after it was read).
fn rewritten_after_first_read(files: LocalBlobStore) -> CommandBlobs {
    let make = |base_url: String| {
        Transfer::Command(CommandTransfer {
            program: "sh".into(),
            login: None,
            upload_from_stdin: vec!["-c".into(), "exit 1".into()],
            download_to_stdout: vec!["-c".into(), REWRITING.into(), "down".into(), "{url}".into()],
            base_url,
            url_query: None,
            env: vec![],
            secret_env: vec![],
        })
    };
    CommandBlobs { files, make: Box::new(make) }
}

const REWRITING: &str = r#"f="${1%%\?*}"; n="$f.reads"; c=$(cat "$n" 2>/dev/null || echo 0); echo $((c + 1)) > "$n"; if [ "$c" -ge 1 ]; then head -c 4096 /dev/urandom; else cat "$f"; fi"#;

/// Every object changes after the restore job's first read of it: the restore loads the bytes
/// it verified (each object is read from the store once) and the copy equals the source.
#[test]
fn a_blob_rewritten_after_it_was_verified_is_never_loaded() {
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("honest", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "rewritten-source", &password).await.unwrap();
        let params = executor.cluster(&source.spec()).unwrap().params();
        load_sample_data(&params, &password).await.unwrap();
        let bin = executor.binaries().clone();
        let before = InstanceSnapshot::take(&bin, &params, &password).await.unwrap();
        let image = t.create_image(OperationId::new(), CreateImageRequest::new("to-rewrite", source.id)).await.unwrap();

        let blobs = Arc::new(rewritten_after_first_read(world.blobs.as_ref().clone()));
        let restorer = LocalExecutor::builder(world.base.path().join("restorer"), blobs.clone()).build().unwrap();
        let t2 = Toygres::new(world.catalog.clone(), blobs, Arc::new(restorer.clone())).with_image_keys(world.keys());
        let restored =
            t2.create_instance(OperationId::new(), CreateInstanceRequest::restore("rewritten-copy", image.id));
        let restored = restored.await;
        let reads: Vec<(String, String)> =
            std::fs::read_dir(world.blobs.root().join(ImageLocation::for_image(image.id).prefix))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "reads"))
                .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap().trim().to_string()))
                .collect();
        let restored = restored.expect("the restore loads only what it verified");
        assert!(!reads.is_empty() && reads.iter().all(|(_, n)| n == "1"), "objects read more than once: {reads:?}");
        let copy_params = restorer.cluster(&restored.spec()).unwrap().params();
        let after = InstanceSnapshot::take(&bin, &copy_params, &password).await.unwrap();
        assert_eq!(before.diff(&after), Vec::<String>::new());
        restorer.discard_blocking();
    });
}
