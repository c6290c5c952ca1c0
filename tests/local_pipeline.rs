//! The local backend end to end against real PostgreSQL: image → restore → equality, passwords,
//! corrupted and not-ready images, image deletion, concurrent images.

#[path = "local/support.rs"]
mod support;

use support::*;
use toygres_core::manifest::{database_object_name, MANIFEST_NAME};
use toygres_core::{
    BlobStore, ClusterExecutor, CreateImageRequest, CreateInstanceRequest, Error, ImageLocation, ImageState,
    InstanceState, NoProgress, OperationId, Password, RestoreJobSpec,
};

#[test]
fn image_restore_equals_source_and_uses_the_source_password() {
    let f = fixture();
    rt().block_on(async {
        let image = image_of(&f.t, &f.source, "roundtrip").await;
        assert_eq!(image.state, ImageState::Ready);
        assert!(image.checksum.as_deref().unwrap().starts_with("sha256:"));
        let names = objects_of(&f.blobs, image.id).await;
        assert!(names.contains(&MANIFEST_NAME.to_string()) && names.contains(&database_object_name(2)), "{names:?}");

        let mut request = CreateInstanceRequest::restore("roundtrip-copy", image.id);
        request.password = Some(Password::new("the-request-password"));
        let restored = f.t.create_instance(OperationId::new(), request).await.unwrap();
        assert_eq!(restored.state, InstanceState::Running);
        let conn = restored.connection.clone().unwrap();
        assert_ne!(conn.port, f.source.connection.as_ref().map(|c| c.port).unwrap_or(0));

        let copy = snapshot(&f.executor, &restored, &f.password).await;
        let diff = f.snapshot.diff(&copy);
        assert!(diff.is_empty(), "restored instance differs from the source:\n{}", diff.join("\n"));
        let (dbs, tables, rows, los) = copy.counts();
        assert!(dbs >= 3 && tables >= 6 && rows > 2500 && los == 1, "{dbs} {tables} {rows} {los}");

        f.executor.test_connection(&restored.spec(), &conn, &f.password).await.expect("the source password works");
        let refused = f.executor.test_connection(&restored.spec(), &conn, &Password::new("the-request-password")).await;
        assert!(refused.is_err(), "the request's password must be refused");
        delete_and_check(&f, &restored).await;
    });
}

#[test]
fn corrupted_image_is_refused_before_anything_is_created() {
    let f = fixture();
    rt().block_on(async {
        let image = image_of(&f.t, &f.source, "to-corrupt").await;
        let location = ImageLocation::for_image(image.id);
        let file = f.blobs.object_path(&location, &database_object_name(0));
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&file, bytes).unwrap();

        let err =
            f.t.create_instance(OperationId::new(), CreateInstanceRequest::restore("corrupt-copy", image.id)).await;
        assert!(
            matches!(err, Err(Error::ChecksumMismatch { ref object, .. }) if *object == database_object_name(0)),
            "{err:?}"
        );
        assert!(matches!(f.t.catalog.get_instance_by_name("corrupt-copy").await, Err(Error::InstanceNotFound(_))));
        assert!(!volume_names(&f.executor).contains(&"corrupt-copy".to_string()), "no volume was created");

        // The restore job checks too, before it initialises anything.
        let spec = unrecorded_spec("corrupt-job");
        f.executor.create_volume(&spec, &f.password).await.unwrap();
        let job = RestoreJobSpec {
            image_id: image.id,
            location,
            checksum: image.checksum.clone().unwrap(),
            instance: spec.clone(),
            databases: None,
            data_key: f.t.data_key(&image).await.unwrap(),
            recovery: None,
        };
        let job = f.executor.start_restore_job(&job).await.unwrap();
        let err =
            f.executor.wait_for_job(&job, std::time::Duration::from_secs(60), std::sync::Arc::new(NoProgress)).await;
        match err {
            Err(Error::JobFailed { reason, logs, .. }) => {
                assert!(reason.contains("corrupted"), "{reason}");
                assert!(logs.contains("failed"), "{logs}");
                assert!(!logs.contains(f.password.expose()), "the job log holds no password");
            }
            other => panic!("expected JobFailed, got {other:?}"),
        }
        let cluster = f.executor.cluster(&spec).unwrap();
        assert!(!cluster.is_initialized() && !cluster.is_running(), "nothing was loaded");
        f.executor.delete_instance(&spec).await.unwrap();
        f.t.delete_image(image.id).await.unwrap();
    });
}

#[test]
fn not_ready_image_is_refused() {
    let f = fixture();
    rt().block_on(async {
        let request = CreateImageRequest::new("unfinished", f.source.id);
        let image = f.t.backup().reserve_image(OperationId::new(), &request).await.unwrap();
        assert_eq!(image.state, ImageState::Creating);
        let err = f.t.create_instance(OperationId::new(), CreateInstanceRequest::restore("too-early", image.id)).await;
        assert!(matches!(err, Err(Error::ImageNotReady { .. })), "{err:?}");
        assert!(!volume_names(&f.executor).contains(&"too-early".to_string()));
    });
}

#[test]
fn deleting_an_image_removes_its_blobs_and_record() {
    let f = fixture();
    rt().block_on(async {
        let image = image_of(&f.t, &f.source, "short-lived").await;
        let location = ImageLocation::for_image(image.id);
        assert!(!f.blobs.stat(&location).await.unwrap().is_empty());
        f.t.delete_image(image.id).await.unwrap();
        assert!(f.blobs.stat(&location).await.unwrap().is_empty());
        assert!(!f.blobs.root().join(&location.prefix).exists());
        assert!(matches!(f.t.catalog.get_image(image.id).await, Err(Error::ImageNotFound(_))));
        assert!(!f.blobs.list_images().await.unwrap().contains(&image.id));
    });
}

#[test]
fn two_instances_imaged_concurrently() {
    let f = fixture();
    rt().block_on(async {
        let password = Password::generate();
        let other = source_instance(&f.executor, &f.t, "second-source", &password).await;
        let client = f.executor.cluster(&spec(&other)).unwrap().connect("postgres", &password).await.unwrap();
        client
            .batch_execute("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g")
            .await
            .unwrap();
        let (a, b) = tokio::join!(image_of(&f.t, &f.source, "concurrent-a"), image_of(&f.t, &other, "concurrent-b"));
        for image in [&a, &b] {
            assert_eq!(image.state, ImageState::Ready);
            let loc = ImageLocation::for_image(image.id);
            let checksum = image.checksum.clone().unwrap();
            let key = f.t.data_key(image).await.unwrap();
            toygres_core::verify_image(&*f.blobs, &loc, &checksum, key.as_ref(), Default::default()).await.unwrap();
        }
        assert_ne!(a.checksum, b.checksum);
        let restored =
            f.t.create_instance(OperationId::new(), CreateInstanceRequest::restore("second-copy", b.id)).await.unwrap();
        let expected = snapshot(&f.executor, &other, &password).await;
        assert!(expected.diff(&snapshot(&f.executor, &restored, &password).await).is_empty());
        delete_and_check(&f, &restored).await;
        delete_and_check(&f, &other).await;
    });
}

#[test]
fn image_from_a_newer_major_version_is_refused_before_loading() {
    let f = fixture();
    rt().block_on(async {
        let image = image_of(&f.t, &f.source, "from-the-future").await;
        let location = ImageLocation::for_image(image.id);
        // Forged by a key holder: the job's own check of the major is what is tested.
        let key = f.t.data_key(&image).await.unwrap();
        let stored = f.blobs.read(&location, MANIFEST_NAME).await.unwrap();
        let mut manifest = toygres_core::Manifest::from_stored(image.id, &stored, key.as_ref()).unwrap();
        manifest.pg_version = "99.1".into();
        let bytes = manifest.stored_bytes(key.as_ref());
        f.blobs.write(&location, MANIFEST_NAME, bytes.clone().into()).await.unwrap();
        let spec = unrecorded_spec("future-job");
        f.executor.create_volume(&spec, &f.password).await.unwrap();
        let job = RestoreJobSpec {
            image_id: image.id,
            location,
            checksum: toygres_core::manifest::sha256_hex(&bytes),
            instance: spec.clone(),
            databases: None,
            data_key: key,
            recovery: None,
        };
        let job = f.executor.start_restore_job(&job).await.unwrap();
        let err =
            f.executor.wait_for_job(&job, std::time::Duration::from_secs(60), std::sync::Arc::new(NoProgress)).await;
        assert!(
            matches!(err, Err(Error::JobFailed { ref reason, .. }) if reason.contains("newer than the local binaries")),
            "{err:?}"
        );
        assert!(!f.executor.cluster(&spec).unwrap().is_initialized());
        f.executor.delete_job(&job).await.unwrap();
        f.executor.delete_instance(&spec).await.unwrap();
        f.t.delete_image(image.id).await.unwrap();
    });
}

#[test]
fn an_instance_whose_port_was_taken_moves_to_a_free_one() {
    let f = fixture();
    rt().block_on(async {
        let spec = unrecorded_spec("port-thief-victim");
        f.executor.create_volume(&spec, &f.password).await.unwrap();
        let planned = f.executor.connection_info(&spec).await.unwrap().port;
        let _thief = std::net::TcpListener::bind(("127.0.0.1", planned)).unwrap();
        let conn = f.executor.provision_empty(&spec, &f.password).await.unwrap();
        assert_ne!(conn.port, planned);
        assert_eq!(f.executor.connection_info(&spec).await.unwrap().port, conn.port);
        f.executor.test_connection(&spec, &conn, &f.password).await.unwrap();
        f.executor.delete_instance(&spec).await.unwrap();
    });
}

#[test]
fn a_failing_pg_restore_reports_its_stderr_and_leaves_no_server() {
    let f = fixture();
    rt().block_on(async {
        use toygres_core::manifest::sha256_hex;
        let image = image_of(&f.t, &f.source, "unloadable").await;
        let location = ImageLocation::for_image(image.id);
        // Forged by a key holder: authentic bytes that pg_restore refuses.
        let key = f.t.data_key(&image).await.unwrap().unwrap();
        let stored = f.blobs.read(&location, MANIFEST_NAME).await.unwrap();
        let mut manifest = toygres_core::Manifest::from_stored(image.id, &stored, Some(&key)).unwrap();
        let garbage = zstd::encode_all(&b"this is not a pg_dump archive"[..], 1).unwrap();
        let db = &mut manifest.databases[0].object;
        let garbage = toygres_core::envelope::object::seal_all(&key, image.id, &db.name, &garbage);
        (db.size, db.sha256) = (garbage.len() as u64, sha256_hex(&garbage));
        f.blobs.write(&location, &db.name.clone(), garbage.into()).await.unwrap();
        let bytes = manifest.stored_bytes(Some(&key));
        f.blobs.write(&location, MANIFEST_NAME, bytes.clone().into()).await.unwrap();

        let spec = unrecorded_spec("unloadable-job");
        f.executor.create_volume(&spec, &f.password).await.unwrap();
        let job = RestoreJobSpec {
            image_id: image.id,
            location,
            checksum: sha256_hex(&bytes),
            instance: spec.clone(),
            databases: None,
            data_key: Some(key),
            recovery: None,
        };
        let job = f.executor.start_restore_job(&job).await.unwrap();
        let timeout = std::time::Duration::from_secs(120);
        match f.executor.wait_for_job(&job, timeout, std::sync::Arc::new(NoProgress)).await {
            Err(Error::JobFailed { reason, logs, .. }) => {
                assert!(reason.contains("pg_restore"), "{reason}");
                assert!(logs.contains("pg_restore") && logs.contains("archive"), "pg_restore's stderr: {logs}");
            }
            other => panic!("expected JobFailed, got {other:?}"),
        }
        assert!(!f.executor.cluster(&spec).unwrap().is_running(), "the load server was stopped");
        f.executor.delete_job(&job).await.unwrap();
        f.executor.delete_instance(&spec).await.unwrap();
        f.t.delete_image(image.id).await.unwrap();
    });
}
