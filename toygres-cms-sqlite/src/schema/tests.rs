//! Upgrades: a catalog written by the release before image encryption (schema version 4,
//! passwords sealed unbound) opens with this one, gains the `encryption` column, has its
//! passwords bound to their records, and reads back as before; a catalog of the previous release
//! (version 5) gains the schedules and progress tables and keeps its records; one of version 6
//! gains the 'clone' format and `images.from_image`, keeping every format it held; one of
//! version 7 gains the instances' `recovery` and `protection`, its instances reading back without.

use super::{migrate_to, SCHEMA_VERSION};
use crate::pool::{connect, SqliteOptions};
use crate::SqliteCatalog;
use rusqlite::{params, Connection};
use toygres_core::crypto::CatalogKey;
use toygres_core::envelope::WrappedKey;
use toygres_core::testing::catalog_suite::new_instance;
use toygres_core::wal::{Protection, RecoveryPlan, RecoveryTarget};
use toygres_core::{
    CatalogStore, CreateScheduleRequest, Error, ImageFilter, ImageFormat, ImageId, ImageState, InstanceId,
    InstanceState, NewImage, OperationId, Password, Phase, StoredProgress, Subject,
};

/// The schema version of the release before image encryption.
const PREVIOUS: i64 = 4;

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')")).unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
}

/// A catalog file at version [`PREVIOUS`] holding a ready image and a running instance, as that
/// release wrote them (version-1 sealed passwords, no key column).
fn previous_release_catalog(path: &std::path::Path, key: &CatalogKey) -> (ImageId, InstanceId) {
    let mut conn = connect(Some(path), &SqliteOptions::default()).unwrap();
    migrate_to(&mut conn, key, PREVIOUS).unwrap();
    assert!(!columns(&conn, "images").contains(&"encryption".to_string()), "version 4 has no key column");
    let (image, instance) = (ImageId::new(), InstanceId::new());
    conn.execute(
        "INSERT INTO images (id, operation_id, name, source_instance_id, state, pg_version, image_type, size_bytes, \
         checksum, source_password, created_at, updated_at, labels, format) \
         VALUES (?1, ?2, 'old', ?3, 'ready', '17', 'stock', 42, 'sha256:00', ?4, 1000, 2000, '{\"team\":\"a\"}', 'logical')",
        params![image.to_string(), OperationId::new().to_string(), instance.to_string(), key.seal(&Password::new("old-image-pw"))],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO instances (id, operation_id, name, state, image_type, pg_version, password, created_at, updated_at) \
         VALUES (?1, ?2, 'old-inst', 'running', 'stock', '17', ?3, 1000, 1000)",
        params![instance.to_string(), OperationId::new().to_string(), key.seal(&Password::new("old-instance-pw"))],
    )
    .unwrap();
    (image, instance)
}

#[tokio::test]
async fn a_catalog_of_the_previous_release_upgrades_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let key = CatalogKey::generate();
    let (image, instance) = previous_release_catalog(&path, &key);

    let catalog = SqliteCatalog::open(&path, key.clone()).unwrap();
    let raw = Connection::open(&path).unwrap();
    let (max, count): (i64, i64) =
        raw.query_row("SELECT max(version), count(*) FROM schema_version", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!((max, count), (SCHEMA_VERSION, SCHEMA_VERSION), "each later migration applied once");
    assert_eq!(SCHEMA_VERSION, 8);
    assert!(columns(&raw, "images").contains(&"encryption".to_string()), "the upgrade adds the key column");

    let old = catalog.get_image(image).await.unwrap();
    assert_eq!((old.state, old.encryption.as_ref(), old.name.as_str()), (ImageState::Ready, None, "old"));
    assert_eq!((old.size_bytes, old.labels.get("team").map(String::as_str)), (Some(42), Some("a")));
    let listed = catalog.list_images(&ImageFilter::new()).await.unwrap();
    assert_eq!(listed, vec![old.clone()], "listed as it is read");
    assert_eq!(catalog.image_source_password(image).await.unwrap().expose(), "old-image-pw", "it still opens");
    // ... now bound to its record: the upgrade sealed every unbound password again.
    let first = |sql: &str| raw.query_row(sql, [], |r| r.get::<_, Vec<u8>>(0)).unwrap()[0];
    assert_eq!(first("SELECT source_password FROM images"), 2, "the image's password is bound");
    assert_eq!(first("SELECT password FROM instances"), 2, "the instance's password is bound");
    assert_eq!(catalog.get_instance(instance).await.unwrap().state, InstanceState::Running);
    assert_eq!(catalog.instance_password(instance).await.unwrap().expose(), "old-instance-pw");
    let some_key = WrappedKey { provider: "local".into(), key_id: "k1".into(), ciphertext: vec![1; 72] };
    let refused = catalog.rewrap_image_key(image, &some_key, &some_key).await;
    assert!(matches!(refused, Err(Error::InvalidRequest { .. })), "an old image is plaintext: {refused:?}");

    // The upgraded catalog records new images with their id and key.
    let mut new = NewImage::new("new", instance);
    let id = ImageId::new();
    (new.id, new.encryption) = (Some(id), Some(some_key.clone()));
    let reserved = catalog.reserve_image(OperationId::new(), &new).await.unwrap();
    assert_eq!((reserved.id, reserved.encryption), (id, Some(some_key)));
    drop(catalog);
    let again = SqliteCatalog::open(&path, key).unwrap();
    assert_eq!(again.get_image(image).await.unwrap(), old, "a second open changes nothing");
}

#[test]
fn a_catalog_of_the_previous_release_with_another_key_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    previous_release_catalog(&path, &CatalogKey::generate());
    assert!(matches!(SqliteCatalog::open(&path, CatalogKey::generate()), Err(Error::WrongKey)));
    let max: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(max, PREVIOUS, "a refused open leaves the catalog un-upgraded");
}

#[tokio::test]
async fn a_catalog_of_version_5_gains_schedules_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let key = CatalogKey::generate();
    let (image, instance) = previous_release_catalog(&path, &key);
    let mut conn = connect(Some(&path), &SqliteOptions::default()).unwrap();
    migrate_to(&mut conn, &key, 5).unwrap();
    let tables = |conn: &Connection| -> Vec<String> {
        let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    };
    assert!(!tables(&conn).contains(&"schedules".to_string()), "version 5 has no schedules");
    drop(conn);

    let catalog = SqliteCatalog::open(&path, key.clone()).unwrap();
    let raw = Connection::open(&path).unwrap();
    let max: i64 = raw.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0)).unwrap();
    assert_eq!(max, SCHEMA_VERSION);
    assert!(tables(&raw).contains(&"schedules".to_string()) && tables(&raw).contains(&"progress".to_string()));
    let old = catalog.get_image(image).await.unwrap();
    assert_eq!((old.name.as_str(), old.state), ("old", ImageState::Ready), "records read back");
    assert_eq!(catalog.instance_password(instance).await.unwrap().expose(), "old-instance-pw");

    let new = CreateScheduleRequest::new("nightly", instance, "0 3 * * *").to_new().unwrap();
    let schedule = catalog.create_schedule(OperationId::new(), &new).await.unwrap();
    assert_eq!(catalog.list_schedules().await.unwrap(), vec![schedule]);
    let progress = StoredProgress::new(Phase::BackupJob, 1, Some(2), chrono::Utc::now());
    catalog.record_progress(Subject::Image(image), &progress).await.unwrap();
    assert!(catalog.get_progress(Subject::Image(image)).await.unwrap().is_some());
    drop(catalog);
    let again = SqliteCatalog::open(&path, key).unwrap();
    assert_eq!(again.list_schedules().await.unwrap().len(), 1, "a second open changes nothing");
}

#[tokio::test]
async fn a_catalog_of_version_6_gains_clone_images_and_keeps_its_formats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let key = CatalogKey::generate();
    let (logical, instance) = previous_release_catalog(&path, &key);
    let mut conn = connect(Some(&path), &SqliteOptions::default()).unwrap();
    migrate_to(&mut conn, &key, 6).unwrap();
    let physical = ImageId::new();
    conn.execute(
        "INSERT INTO images (id, operation_id, name, source_instance_id, state, image_type, created_at, updated_at, \
         format) VALUES (?1, ?2, 'phys', ?3, 'creating', 'stock', 3000, 3000, 'physical')",
        params![physical.to_string(), OperationId::new().to_string(), instance.to_string()],
    )
    .unwrap();
    let old_schedule = CreateScheduleRequest::new("nightly", instance, "0 3 * * *")
        .with_format(ImageFormat::Physical)
        .to_new()
        .unwrap();
    crate::schedules::create(&mut conn, OperationId::new(), &old_schedule).unwrap();
    let clone_row = "INSERT INTO images (id, operation_id, name, source_instance_id, state, image_type, created_at, \
                     updated_at, format) VALUES (?1, ?2, 'c', ?3, 'creating', 'stock', 4000, 4000, 'clone')";
    let clone_params = || [ImageId::new().to_string(), OperationId::new().to_string(), instance.to_string()];
    assert!(conn.execute(clone_row, clone_params()).is_err(), "version 6 refuses the clone format");
    assert!(!columns(&conn, "images").contains(&"from_image".to_string()));
    drop(conn);

    let catalog = SqliteCatalog::open(&path, key.clone()).unwrap();
    let raw = Connection::open(&path).unwrap();
    let max: i64 = raw.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0)).unwrap();
    assert_eq!(max, SCHEMA_VERSION);
    let old = catalog.get_image(logical).await.unwrap();
    assert_eq!((old.format, old.from_image, old.name.as_str()), (ImageFormat::Logical, None, "old"));
    assert_eq!(catalog.image_source_password(logical).await.unwrap().expose(), "old-image-pw", "still opens");
    assert_eq!(catalog.get_image(physical).await.unwrap().format, ImageFormat::Physical, "formats are kept");
    let schedules = catalog.list_schedules().await.unwrap();
    assert_eq!(
        schedules.iter().map(|s| (s.name.as_str(), s.format)).collect::<Vec<_>>(),
        [("nightly", ImageFormat::Physical)]
    );
    assert_eq!(raw.execute(clone_row, clone_params()).unwrap(), 1, "version 7 allows the clone format");
    let bogus = "UPDATE images SET format = 'bogus' WHERE id = ?1";
    assert!(raw.execute(bogus, [logical.to_string()]).is_err(), "the check still refuses unknown formats");
    assert!(raw.execute("UPDATE schedules SET format = 'bogus'", []).is_err(), "on schedules too");

    let export = NewImage::new("export", instance).with_format(ImageFormat::Physical).with_from_image(physical);
    let reserved = catalog.reserve_image(OperationId::new(), &export).await.unwrap();
    assert_eq!(reserved.from_image, Some(physical));
    let clones = CreateScheduleRequest::new("clones", instance, "0 * * * *").with_format(ImageFormat::Clone);
    let clones = catalog.create_schedule(OperationId::new(), &clones.to_new().unwrap()).await.unwrap();
    assert_eq!(catalog.get_schedule(clones.id).await.unwrap().format, ImageFormat::Clone);
    drop(catalog);
    let again = SqliteCatalog::open(&path, key).unwrap();
    assert_eq!(again.get_image(logical).await.unwrap(), old, "a second open changes nothing");
}

#[tokio::test]
async fn a_catalog_of_version_7_gains_recovery_plans_and_protection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let key = CatalogKey::generate();
    let (_, instance) = previous_release_catalog(&path, &key);
    let mut conn = connect(Some(&path), &SqliteOptions::default()).unwrap();
    migrate_to(&mut conn, &key, 7).unwrap();
    assert!(!columns(&conn, "instances").contains(&"protection".to_string()), "version 7 has no protection");
    drop(conn);

    let catalog = SqliteCatalog::open(&path, key.clone()).unwrap();
    let raw = Connection::open(&path).unwrap();
    let max: i64 = raw.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0)).unwrap();
    assert_eq!(max, SCHEMA_VERSION);
    let old = catalog.get_instance(instance).await.unwrap();
    assert_eq!((old.name.as_str(), old.recovery.as_ref(), old.protection.as_ref()), ("old-inst", None, None));
    let protection = Protection::started(None);
    let protected = catalog.set_instance_protection(instance, Some(protection.clone())).await.unwrap();
    assert_eq!(protected.protection, Some(protection), "an old instance can be protected");

    let plan = RecoveryPlan {
        source_instance_id: instance,
        target: RecoveryTarget::Latest,
        base_image_id: ImageId::new(),
        timeline: 1,
        from_lsn: "0/2000028".parse().unwrap(),
        head_lsn: "0/3000000".parse().unwrap(),
        requested_at: chrono::Utc::now(),
    };
    let mut new = new_instance("restored", InstanceState::Provisioning, "pw");
    new.recovery = Some(plan.clone());
    let created = catalog.create_instance(OperationId::new(), &new).await.unwrap();
    assert_eq!(catalog.get_instance(created.id).await.unwrap().recovery, Some(plan));
    drop(catalog);
    let again = SqliteCatalog::open(&path, key).unwrap();
    assert_eq!(again.get_instance(instance).await.unwrap(), protected, "a second open changes nothing");
}
