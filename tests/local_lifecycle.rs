//! The lifecycle API against real PostgreSQL: an image's metadata on its record (databases with
//! sizes, raw and stored bytes, format, times), and a restore of a subset of its databases that
//! equals the source on those databases and holds none of the others.

#[path = "local/support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use toygres_core::{ClusterExecutor, CreateInstanceRequest, Error, ImageFormat, ImageLocation, InstanceFilter};
use toygres_core::{NoProgress, OperationId, RestoreJobSpec};

#[test]
fn image_metadata_and_a_restore_of_one_database() {
    let f = fixture();
    rt().block_on(async {
        let image = image_of(&f.t, &f.source, "meta").await;
        let metadata = image.metadata.clone().expect("a ready image carries its metadata");
        assert_eq!((metadata.format, metadata.format_version), (ImageFormat::Logical, 2));
        assert_eq!(Some(metadata.stored_bytes), image.size_bytes, "stored bytes are the record's size");
        let names: Vec<&str> = metadata.database_names().collect();
        for db in ["appdb", "shopdb", "postgres"] {
            assert!(names.contains(&db), "{db} is listed: {names:?}");
        }
        for db in &metadata.databases {
            assert!(db.stored_bytes > 0, "{db:?}");
            assert!(db.raw_bytes.is_some_and(|raw| raw >= db.stored_bytes / 2), "raw size counted: {db:?}");
        }
        assert!(metadata.raw_bytes.is_some_and(|raw| raw > 0));
        assert!(metadata.dump_version.is_some());
        let started = metadata.started_at.expect("the pipeline saw the job start");
        assert!(started <= metadata.finished_at && metadata.finished_at <= image.updated_at);
        assert_eq!(f.t.get_image(image.id).await.unwrap().metadata, Some(metadata), "stored by the catalog");

        let request = CreateInstanceRequest::restore("only-appdb", image.id)
            .with_databases(["appdb"])
            .with_label("purpose", "subset-test");
        let restored = f.t.create_instance(OperationId::new(), request).await.unwrap();
        assert_eq!(restored.databases, Some(vec!["appdb".to_string()]));
        let listed = f.t.list_instances(&InstanceFilter::new().label("purpose", "subset-test")).await.unwrap();
        assert_eq!(listed.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![restored.id]);
        let got = snapshot(&f.executor, &restored, &f.password).await;
        assert!(got.databases.contains_key("appdb"));
        assert!(!got.databases.contains_key("shopdb"), "shopdb was not asked for");
        let mut expected = f.snapshot.clone();
        let mut compared = got.clone();
        compared.databases.retain(|name, _| name == "appdb");
        expected.databases.retain(|name, _| name == "appdb");
        assert_eq!(expected.diff(&compared), Vec::<String>::new(), "appdb and the roles equal the source's");
        delete_and_check(&f, &restored).await;

        // The job itself refuses a database the image lacks, before it initialises anything
        // (it never skips one silently, whoever started it).
        let spec = unrecorded_spec("unknown-db");
        f.executor.create_volume(&spec, &f.password).await.unwrap();
        let job = RestoreJobSpec {
            image_id: image.id,
            location: ImageLocation::for_image(image.id),
            checksum: image.checksum.clone().unwrap(),
            instance: spec.clone(),
            databases: Some(vec!["appdb".into(), "nosuchdb".into()]),
            data_key: f.t.data_key(&image).await.unwrap(),
            recovery: None,
        };
        let job = f.executor.start_restore_job(&job).await.unwrap();
        let waited = f.executor.wait_for_job(&job, Duration::from_secs(60), Arc::new(NoProgress)).await;
        match waited {
            Err(Error::JobFailed { reason, .. }) => assert!(reason.contains("\"nosuchdb\""), "{reason}"),
            other => panic!("expected JobFailed naming nosuchdb, got {other:?}"),
        }
        let cluster = f.executor.cluster(&spec).unwrap();
        assert!(!cluster.is_initialized() && !cluster.is_running(), "nothing was loaded");
        f.executor.delete_instance(&spec).await.unwrap();
    });
}
