//! Physical images on the local executor: `pg_basebackup` → restore equal to the source (the
//! fidelity corpus, compared by the project's comparator), with byte progress, and the rules:
//! same major only, no `wal_level=minimal` source, corrupted or truncated archives refused before
//! anything is unpacked. Each refusal creates nothing.

#[path = "local/support.rs"]
mod support;
#[path = "local/world.rs"]
mod world;

use std::sync::{Arc, Mutex};
use support::rt;
use toygres_core::manifest::archive_object_name;
use toygres_core::{CreateImageRequest, CreateInstanceRequest, Error, EventKind, ImageFormat};
use toygres_core::{ImageLocation, ImageState, InstanceRecord, OperationId, Password, ProgressEvent};
use toygres_core::{ImageRecord, Toygres};
use toygres_local::fidelity::corpus::{CorpusOptions, MAIN_DB};
use toygres_local::fidelity::InstanceSnapshot;
use world::{corpus_source, pg18, World};

fn physical(name: &str, source: &InstanceRecord) -> CreateImageRequest {
    CreateImageRequest::new(name, source.id).physical()
}

async fn physical_image(t: &Toygres, source: &InstanceRecord, name: &str) -> ImageRecord {
    t.create_image(OperationId::new(), physical(name, source)).await.unwrap()
}

/// Every `Bytes` event seen, as (done, total).
fn byte_events(events: &Mutex<Vec<ProgressEvent>>) -> Vec<(u64, Option<u64>)> {
    let events = events.lock().unwrap();
    events
        .iter()
        .filter_map(|e| if let EventKind::Bytes { done, total } = e.kind { Some((done, total)) } else { None })
        .collect()
}

#[test]
fn a_physical_image_restores_equal_to_the_source_with_byte_progress() {
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("physical", None);
        let bin = executor.binaries().clone();
        let options = CorpusOptions { icu: bin.has_icu().await };
        let password = Password::generate();
        let (source, snapshot) = corpus_source(&executor, &t, &password, options, &bin).await;
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let t = t.with_progress(Arc::new(move |e: &ProgressEvent| seen.lock().unwrap().push(e.clone())));

        let image = physical_image(&t, &source, "physical").await;
        assert_eq!((image.state, image.format), (ImageState::Ready, ImageFormat::Physical));
        let backup_bytes = byte_events(&events);
        assert!(backup_bytes.last().is_some_and(|(done, total)| *done > 0 && total.is_some()), "{backup_bytes:?}");
        let manifest = support::manifest_of(&t, &image).await;
        assert_eq!(manifest.format, ImageFormat::Physical);
        assert!(manifest.databases.is_empty() && !manifest.archives.is_empty());

        events.lock().unwrap().clear();
        let mut request = CreateInstanceRequest::restore("phys-copy", image.id);
        request.password = Some(Password::new("ignored-x"));
        let restored = t.create_instance(OperationId::new(), request).await.unwrap();
        let restore_bytes = byte_events(&events);
        let (done, total) = *restore_bytes.last().expect("restore byte progress");
        assert_eq!(Some(done), total, "the restore reports every byte of its known total: {restore_bytes:?}");
        let params = executor.cluster(&restored.spec()).unwrap().params();
        let copy = InstanceSnapshot::take(&bin, &params, &password).await.unwrap();
        // A base backup never holds unlogged tables' rows (PostgreSQL resets them at recovery):
        // the one expected difference.
        let mut expected = snapshot.clone();
        let empty = (0, "d41d8cd98f00b204e9800998ecf8427e".to_string());
        expected.databases.get_mut(MAIN_DB).unwrap().tables.insert("app.scratch".into(), empty);
        let diff = expected.diff(&copy);
        assert!(diff.is_empty(), "physical restore: {diff:#?}");
        assert_ne!(snapshot.diff(&copy), Vec::<String>::new(), "the unlogged table did hold rows on the source");
        assert!(
            params.connect("postgres", &Password::new("ignored-x")).await.is_err(),
            "the request's password is refused"
        );
    });
}

#[test]
fn corrupted_or_truncated_archives_are_refused_before_anything_is_unpacked() {
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("corrupt", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "small-source", &password).await.unwrap();
        let location = |image: &ImageRecord| ImageLocation::for_image(image.id);
        let flipped = physical_image(&t, &source, "flipped").await;
        let path = world.blobs.object_path(&location(&flipped), &archive_object_name(0));
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let err =
            t.create_instance(OperationId::new(), CreateInstanceRequest::restore("from-flipped", flipped.id)).await;
        assert!(
            matches!(err, Err(Error::ChecksumMismatch { ref object, .. }) if *object == archive_object_name(0)),
            "{err:?}"
        );

        let truncated = physical_image(&t, &source, "truncated").await;
        let path = world.blobs.object_path(&location(&truncated), &archive_object_name(0));
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
        let err =
            t.create_instance(OperationId::new(), CreateInstanceRequest::restore("from-truncated", truncated.id)).await;
        assert!(matches!(err, Err(Error::ImageIncomplete { .. })), "{err:?}");
        for name in ["from-flipped", "from-truncated"] {
            assert!(matches!(t.catalog.get_instance_by_name(name).await, Err(Error::InstanceNotFound(_))), "{name}");
        }
        assert_eq!(executor.instance_clusters().len(), 1, "only the source has a volume");
    });
}

#[test]
fn a_source_with_wal_level_minimal_is_refused_before_an_image_is_reserved() {
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("minimal", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "minimal-source", &password).await.unwrap();
        let cluster = executor.cluster(&source.spec()).unwrap();
        cluster.stop().await.unwrap();
        cluster.start(&[("wal_level", "minimal"), ("max_wal_senders", "0")]).await.unwrap();
        let err = t.create_image(OperationId::new(), physical("refused", &source)).await.unwrap_err();
        assert!(matches!(err, Error::InvalidRequest { field: "format", ref reason } if reason.contains("wal_level=minimal")), "{err}");
        let images = t.catalog.list_images(&Default::default()).await.unwrap();
        assert!(images.iter().all(|i| i.source_instance_id != source.id), "no image may be reserved: {images:?}");
        let logical = CreateImageRequest::new("logical-ok", source.id);
        assert_eq!(t.create_image(OperationId::new(), logical).await.unwrap().state, ImageState::Ready);
    });
}

#[test]
fn a_physical_image_restores_only_onto_its_own_major() {
    let Some(pg18) = pg18() else { return };
    rt().block_on(async {
        let mut world = World::new();
        let (old, t_old) = world.executor("pg15", None);
        let (new, t_new) = world.executor("pg18", Some(&pg18));
        let password = Password::generate();
        let source = old.provision_source(&t_old, "pg15-source", &password).await.unwrap();
        let image = physical_image(&t_old, &source, "pg15-physical").await;
        let err = t_new.create_instance(OperationId::new(), CreateInstanceRequest::restore("onto-18", image.id)).await;
        let err = err.unwrap_err();
        assert!(matches!(err, Error::UnsupportedImage { .. }) && err.to_string().contains("same major"), "{err}");
        assert!(matches!(t_new.catalog.get_instance_by_name("onto-18").await, Err(Error::InstanceNotFound(_))));
        assert!(new.instance_clusters().is_empty(), "nothing is created on the other major's executor");
    });
}

/// A physical image carries its source's `postgresql.auto.conf` (ALTER SYSTEM), which PostgreSQL
/// reads last: the restored instance still listens on its own address and port with its own
/// pg_hba.conf, and keeps the source's other settings.
#[test]
fn the_sources_alter_system_cannot_move_the_restored_instances_address_port_or_authentication() {
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("auto-conf", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "altered-source", &password).await.unwrap();
        let client = executor.cluster(&source.spec()).unwrap().connect("postgres", &password).await.unwrap();
        for setting in
            ["port = 1", "listen_addresses = '*'", "hba_file = '/nonexistent/pg_hba.conf'", "work_mem = '7MB'"]
        {
            client.batch_execute(&format!("ALTER SYSTEM SET {setting}")).await.unwrap();
        }
        let image = physical_image(&t, &source, "altered").await;
        let restored = t.create_instance(OperationId::new(), CreateInstanceRequest::restore("unaltered", image.id));
        let restored = restored.await.unwrap();
        let cluster = executor.cluster(&restored.spec()).unwrap();
        let client = cluster.connect("postgres", &password).await.unwrap();
        let show = |name: &'static str| {
            let client = &client;
            async move { client.query_one(&format!("SHOW {name}"), &[]).await.unwrap().get::<_, String>(0) }
        };
        assert_eq!(show("port").await, cluster.port().to_string());
        assert_eq!(show("listen_addresses").await, "127.0.0.1");
        assert!(show("hba_file").await.starts_with(&cluster.data_dir().display().to_string()));
        assert_eq!(show("work_mem").await, "7MB", "the source's other settings are kept");
    });
}
