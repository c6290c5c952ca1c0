//! The catalog as a file: it persists, it refuses a newer schema, it is safe with two handles
//! (think: two processes) on one file, and its errors name the file and what to do.

use rusqlite::Connection;
use std::sync::Arc;
use tokio::sync::Barrier;
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::testing::catalog_suite::{new_image, new_instance, ready_update, RACERS};
use toygres_core::{
    CatalogStore, Error, ImageFilter, ImageState, ImageUpdate, InstanceFilter, InstanceId, InstanceState, OperationId,
};

#[tokio::test]
async fn records_and_passwords_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let key = CatalogKey::generate();
    let catalog = SqliteCatalog::open(&path, key.clone()).unwrap();
    let image = catalog.reserve_image(OperationId::new(), &new_image(InstanceId::new(), "kept")).await.unwrap();
    let image = catalog.update_image(image.id, ImageState::Creating, ready_update("kept-pw")).await.unwrap();
    let new = new_instance("kept", InstanceState::Running, "inst-pw");
    let instance = catalog.create_instance(OperationId::new(), &new).await.unwrap();
    drop(catalog);

    let reopened = SqliteCatalog::open(&path, key).unwrap();
    assert_eq!(reopened.get_image(image.id).await.unwrap(), image);
    assert_eq!(reopened.image_source_password(image.id).await.unwrap().expose(), "kept-pw");
    assert_eq!(reopened.get_instance(instance.id).await.unwrap(), instance);
    assert_eq!(reopened.instance_password(instance.id).await.unwrap().expose(), "inst-pw");
    let versions: i64 =
        Connection::open(&path).unwrap().query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0)).unwrap();
    assert_eq!(versions, SqliteCatalog::SCHEMA_VERSION, "reopening must not re-apply migrations");
}

#[tokio::test]
async fn a_schema_from_a_newer_toygres_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let key = CatalogKey::generate();
    drop(SqliteCatalog::open(&path, key.clone()).unwrap());
    let newer = SqliteCatalog::SCHEMA_VERSION + 7;
    Connection::open(&path).unwrap().execute("INSERT INTO schema_version VALUES (?1, 0)", [newer]).unwrap();

    match SqliteCatalog::open(&path, key) {
        Err(e @ Error::SchemaTooNew { .. }) => {
            assert!(
                matches!(e, Error::SchemaTooNew { found, supported } if found == newer && supported == SqliteCatalog::SCHEMA_VERSION)
            );
            assert!(e.to_string().contains("upgrade toygres"), "{e}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let max: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(max, newer, "the newer schema must be left as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_race_safely() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let key = CatalogKey::generate();
    // Both handles open (and migrate) a fresh file at the same time.
    let opens: Vec<_> = (0..2)
        .map(|_| {
            let (path, key) = (path.clone(), key.clone());
            std::thread::spawn(move || SqliteCatalog::open(path, key))
        })
        .collect();
    let handles: Vec<Arc<SqliteCatalog>> =
        opens.into_iter().map(|t| Arc::new(t.join().unwrap().expect("concurrent open"))).collect();

    let source = InstanceId::new();
    for round in 0..3 {
        let image = handles[0].reserve_image(OperationId::new(), &new_image(source, "race")).await.unwrap();
        let barrier = Arc::new(Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                let (catalog, barrier) = (handles[i % 2].clone(), barrier.clone());
                let update = if i % 2 == 0 {
                    ready_update(&format!("pw-{round}-{i}"))
                } else {
                    ImageUpdate::Failed { reason: format!("racer {i}") }
                };
                tokio::spawn(async move {
                    barrier.wait().await;
                    catalog.update_image(image.id, ImageState::Creating, update).await
                })
            })
            .collect();
        let mut wins = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(_) => wins += 1,
                Err(Error::StateConflict { .. }) => {}
                Err(other) => panic!("a racer got {other:?} instead of StateConflict"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one racer across both handles must win");
        assert_eq!(handles[0].get_image(image.id).await.unwrap(), handles[1].get_image(image.id).await.unwrap());
    }
    let listed = handles[1].list_images(&ImageFilter::new().source(source)).await.unwrap();
    assert_eq!(listed.len(), 3);

    // Both handles create instances concurrently: every one is recorded once.
    let creates: Vec<_> = (0..RACERS)
        .map(|i| {
            let catalog = handles[i % 2].clone();
            tokio::spawn(async move {
                let new = new_instance(&format!("inst-{i}"), InstanceState::Provisioning, "pw");
                catalog.create_instance(OperationId::new(), &new).await
            })
        })
        .collect();
    for create in creates {
        create.await.unwrap().expect("concurrent create");
    }
    assert_eq!(handles[0].list_instances(&InstanceFilter::new()).await.unwrap().len(), RACERS);
}

/// Processes that start together open one fresh file at the same moment: every open succeeds.
/// (SQLite answers "database is locked" at once, without waiting, to a connection switching a
/// file to WAL while another does the same; the open must retry instead of failing.)
#[test]
fn handles_opening_one_fresh_file_at_the_same_moment_all_succeed() {
    const ROUNDS: usize = 20;
    const OPENERS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let key = CatalogKey::generate();
    for round in 0..ROUNDS {
        let path = dir.path().join(format!("catalog-{round}.db"));
        let start = Arc::new(std::sync::Barrier::new(OPENERS));
        let opens: Vec<_> = (0..OPENERS)
            .map(|_| {
                let (path, key, start) = (path.clone(), key.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    SqliteCatalog::open(path, key)
                })
            })
            .collect();
        for open in opens {
            if let Err(e) = open.join().unwrap() {
                panic!("round {round}: a concurrent open failed: {e}");
            }
        }
    }
}

#[test]
fn an_unopenable_path_names_the_file_and_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("catalog.db");
    let e = SqliteCatalog::open(&path, CatalogKey::generate()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    assert!(text.contains(&path.display().to_string()), "error must name the file: {text}");
    assert!(text.contains("directory exists"), "error must say what to check: {text}");
}

#[test]
fn a_file_that_is_not_a_catalog_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let text = SqliteCatalog::open(&path, CatalogKey::generate()).unwrap_err().to_string();
    assert!(text.contains("not a SQLite catalog"), "{text}");
}
