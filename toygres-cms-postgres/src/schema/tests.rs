//! Upgrades: a catalog written by the release before image encryption (schema version 4,
//! passwords sealed unbound) connects with this one, gains the `encryption` column, has its
//! passwords bound to their records, and reads back as before; a catalog of the previous release
//! (version 5) gains the schedules and progress tables and keeps its records; one of version 6
//! gains the 'clone' format and `images.from_image`, keeping every format it held; one of
//! version 7 gains the instances' `recovery` and `protection`, its instances reading back without.
//! Against a throw-away PostgreSQL of toygres-local's harness (run as OS user `postgres` when
//! the tests run as root).

use super::{migrate_to, SCHEMA_VERSION};
use crate::config::quoted_schema;
use crate::{PostgresCatalog, PostgresCatalogConfig};
use toygres_core::crypto::CatalogKey;
use toygres_core::envelope::WrappedKey;
use toygres_core::testing::catalog_suite::new_instance;
use toygres_core::wal::{Protection, RecoveryPlan, RecoveryTarget};
use toygres_core::{
    CatalogStore, CreateScheduleRequest, Error, ImageFilter, ImageFormat, ImageId, ImageState, InstanceId,
    InstanceState, NewImage, OperationId, Password, Phase, StoredProgress, Subject,
};
use toygres_local::{LocalCluster, TempCluster};
use uuid::Uuid;

/// The schema version of the release before image encryption.
const PREVIOUS: i64 = 4;

async fn has_column(raw: &tokio_postgres::Client, schema: &str, table: &str, column: &str) -> bool {
    let sql = "SELECT count(*) FROM information_schema.columns \
               WHERE table_schema = $1 AND table_name = $2 AND column_name = $3";
    raw.query_one(sql, &[&schema, &table, &column]).await.unwrap().get::<_, i64>(0) == 1
}

/// A catalog in `schema` at version [`PREVIOUS`] holding a ready image and a running instance,
/// as that release wrote them (version-1 sealed passwords, no key column).
async fn previous_release_catalog(
    pg: &TempCluster,
    password: &Password,
    schema: &str,
    key: &CatalogKey,
) -> (ImageId, InstanceId) {
    let config = PostgresCatalogConfig::from_pg_config(pg.params().pg_config("postgres", password)).schema(schema);
    let mut raw = pg.cluster().connect("postgres", password).await.unwrap();
    migrate_to(&mut raw, &config, &quoted_schema(schema).unwrap(), key, PREVIOUS).await.unwrap();
    assert!(!has_column(&raw, schema, "images", "encryption").await, "version 4 has no key column");
    let (image, instance) = (ImageId::new(), InstanceId::new());
    let sealed_image = key.seal(&Password::new("old-image-pw"));
    raw.execute(
        &format!(
            "INSERT INTO {schema}.images (id, operation_id, name, source_instance_id, state, pg_version, \
             image_type, size_bytes, checksum, source_password, created_at, updated_at, labels, format) \
             VALUES ($1, $2, 'old', $3, 'ready', '17', 'stock', 42, 'sha256:00', $4, now(), now(), \
             '{{\"team\":\"a\"}}', 'logical')"
        ),
        &[&image.0, &Uuid::new_v4(), &instance.0, &sealed_image],
    )
    .await
    .unwrap();
    let sealed_instance = key.seal(&Password::new("old-instance-pw"));
    raw.execute(
        &format!(
            "INSERT INTO {schema}.instances (id, operation_id, name, state, image_type, pg_version, password, \
             created_at, updated_at) VALUES ($1, $2, 'old-inst', 'running', 'stock', '17', $3, now(), now())"
        ),
        &[&instance.0, &Uuid::new_v4(), &sealed_instance],
    )
    .await
    .unwrap();
    (image, instance)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_of_the_previous_release_upgrades_and_reads_back() {
    let password = Password::generate();
    let pg = LocalCluster::start_temporary(&password)
        .await
        .expect("start a throw-away PostgreSQL (is PostgreSQL installed? see scripts/setup.sh)");
    let key = CatalogKey::generate();
    let schema = format!("prev_{}", Uuid::new_v4().simple());
    let (image, instance) = previous_release_catalog(&pg, &password, &schema, &key).await;
    let config = || PostgresCatalogConfig::from_pg_config(pg.params().pg_config("postgres", &password)).schema(&schema);

    // Another key is still refused, and leaves the catalog as it was.
    let refused = PostgresCatalog::connect(config(), CatalogKey::generate()).await;
    assert!(matches!(refused, Err(Error::WrongKey)), "{refused:?}");
    let raw = pg.cluster().connect("postgres", &password).await.unwrap();
    let versions = format!("SELECT max(version), count(*) FROM {schema}.schema_version");
    let (max, count): (i64, i64) = raw.query_one(&versions, &[]).await.map(|r| (r.get(0), r.get(1))).unwrap();
    assert_eq!((max, count), (PREVIOUS, PREVIOUS), "a refused connect leaves the catalog un-upgraded");

    let catalog = PostgresCatalog::connect(config(), key.clone()).await.unwrap();
    let (max, count): (i64, i64) = raw.query_one(&versions, &[]).await.map(|r| (r.get(0), r.get(1))).unwrap();
    assert_eq!((max, count), (SCHEMA_VERSION, SCHEMA_VERSION), "each later migration applied once");
    assert_eq!(SCHEMA_VERSION, 8);
    assert!(has_column(&raw, &schema, "images", "encryption").await, "the upgrade adds the key column");

    let old = catalog.get_image(image).await.unwrap();
    assert_eq!((old.state, old.encryption.as_ref(), old.name.as_str()), (ImageState::Ready, None, "old"));
    assert_eq!((old.size_bytes, old.labels.get("team").map(String::as_str)), (Some(42), Some("a")));
    assert_eq!(catalog.list_images(&ImageFilter::new()).await.unwrap(), vec![old.clone()], "listed as read");
    assert_eq!(catalog.image_source_password(image).await.unwrap().expose(), "old-image-pw", "it still opens");
    // ... now bound to its record: the upgrade sealed every unbound password again.
    for (table, column) in [("images", "source_password"), ("instances", "password")] {
        let sql = format!("SELECT get_byte({column}, 0) FROM {schema}.{table}");
        let version: i32 = raw.query_one(&sql, &[]).await.unwrap().get(0);
        assert_eq!(version, 2, "{table}.{column} is bound to its record");
    }
    assert_eq!(catalog.get_instance(instance).await.unwrap().state, InstanceState::Running);
    assert_eq!(catalog.instance_password(instance).await.unwrap().expose(), "old-instance-pw");
    let some_key = WrappedKey { provider: "local".into(), key_id: "k1".into(), ciphertext: vec![1; 72] };
    let plain = catalog.rewrap_image_key(image, &some_key, &some_key).await;
    assert!(matches!(plain, Err(Error::InvalidRequest { .. })), "an old image is plaintext: {plain:?}");

    // The upgraded catalog records new images with their id and key.
    let mut new = NewImage::new("new", instance);
    let id = ImageId::new();
    (new.id, new.encryption) = (Some(id), Some(some_key.clone()));
    let reserved = catalog.reserve_image(OperationId::new(), &new).await.unwrap();
    assert_eq!((reserved.id, reserved.encryption), (id, Some(some_key)));
    let again = PostgresCatalog::connect(config(), key).await.unwrap();
    assert_eq!(again.get_image(image).await.unwrap(), old, "a second connect changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_of_version_5_gains_schedules_and_progress() {
    let password = Password::generate();
    let pg = LocalCluster::start_temporary(&password)
        .await
        .expect("start a throw-away PostgreSQL (is PostgreSQL installed? see scripts/setup.sh)");
    let key = CatalogKey::generate();
    let schema = format!("v5_{}", Uuid::new_v4().simple());
    let (image, instance) = previous_release_catalog(&pg, &password, &schema, &key).await;
    let config = || PostgresCatalogConfig::from_pg_config(pg.params().pg_config("postgres", &password)).schema(&schema);
    let mut raw = pg.cluster().connect("postgres", &password).await.unwrap();
    migrate_to(&mut raw, &config(), &quoted_schema(&schema).unwrap(), &key, 5).await.unwrap();
    let table = |name: &'static str| format!("SELECT to_regclass('{schema}.{name}') IS NOT NULL");
    assert!(!raw.query_one(&table("schedules"), &[]).await.unwrap().get::<_, bool>(0), "version 5 has none");

    let catalog = PostgresCatalog::connect(config(), key.clone()).await.unwrap();
    let versions = format!("SELECT max(version) FROM {schema}.schema_version");
    assert_eq!(raw.query_one(&versions, &[]).await.unwrap().get::<_, i64>(0), SCHEMA_VERSION);
    for name in ["schedules", "progress"] {
        assert!(raw.query_one(&table(name), &[]).await.unwrap().get::<_, bool>(0), "{name} created");
    }
    let old = catalog.get_image(image).await.unwrap();
    assert_eq!((old.name.as_str(), old.state), ("old", ImageState::Ready), "records read back");
    assert_eq!(catalog.instance_password(instance).await.unwrap().expose(), "old-instance-pw");

    let new = CreateScheduleRequest::new("nightly", instance, "0 3 * * *").to_new().unwrap();
    let schedule = catalog.create_schedule(OperationId::new(), &new).await.unwrap();
    assert_eq!(catalog.list_schedules().await.unwrap(), vec![schedule]);
    let progress = StoredProgress::new(Phase::BackupJob, 1, Some(2), toygres_core_now());
    catalog.record_progress(Subject::Image(image), &progress).await.unwrap();
    assert_eq!(catalog.get_progress(Subject::Image(image)).await.unwrap(), Some(progress));
    let again = PostgresCatalog::connect(config(), key).await.unwrap();
    assert_eq!(again.list_schedules().await.unwrap().len(), 1, "a second connect changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_of_version_6_gains_clone_images_and_keeps_its_formats() {
    let password = Password::generate();
    let pg = LocalCluster::start_temporary(&password)
        .await
        .expect("start a throw-away PostgreSQL (is PostgreSQL installed? see scripts/setup.sh)");
    let key = CatalogKey::generate();
    let schema = format!("v6_{}", Uuid::new_v4().simple());
    let (logical, instance) = previous_release_catalog(&pg, &password, &schema, &key).await;
    let config = || PostgresCatalogConfig::from_pg_config(pg.params().pg_config("postgres", &password)).schema(&schema);
    let mut raw = pg.cluster().connect("postgres", &password).await.unwrap();
    migrate_to(&mut raw, &config(), &quoted_schema(&schema).unwrap(), &key, 6).await.unwrap();
    let image_row = |format: &str| {
        format!(
            "INSERT INTO {schema}.images (id, operation_id, name, source_instance_id, state, image_type, created_at, \
             updated_at, format) VALUES ($1, $2, 'img', $3, 'creating', 'stock', now(), now(), '{format}')"
        )
    };
    let physical = ImageId::new();
    raw.execute(&image_row("physical"), &[&physical.0, &Uuid::new_v4(), &instance.0]).await.unwrap();
    let schedule_row = |format: &str| {
        format!(
            "INSERT INTO {schema}.schedules (id, operation_id, name, instance_id, cron, format, keep_last, created_at) \
             VALUES ($1, $2, $3, $4, '0 3 * * *', '{format}', 1, now())"
        )
    };
    let (schedule, name) = (Uuid::new_v4(), "nightly".to_string());
    raw.execute(&schedule_row("physical"), &[&schedule, &Uuid::new_v4(), &name, &instance.0]).await.unwrap();
    let clone = raw.execute(&image_row("clone"), &[&Uuid::new_v4(), &Uuid::new_v4(), &instance.0]).await;
    assert!(clone.is_err(), "version 6 refuses the clone format");
    assert!(!has_column(&raw, &schema, "images", "from_image").await);

    let catalog = PostgresCatalog::connect(config(), key.clone()).await.unwrap();
    let versions = format!("SELECT max(version) FROM {schema}.schema_version");
    assert_eq!(raw.query_one(&versions, &[]).await.unwrap().get::<_, i64>(0), SCHEMA_VERSION);
    let old = catalog.get_image(logical).await.unwrap();
    assert_eq!((old.format, old.from_image, old.name.as_str()), (ImageFormat::Logical, None, "old"));
    assert_eq!(catalog.image_source_password(logical).await.unwrap().expose(), "old-image-pw", "still opens");
    assert_eq!(catalog.get_image(physical).await.unwrap().format, ImageFormat::Physical, "formats are kept");
    let schedules = catalog.list_schedules().await.unwrap();
    let kept: Vec<_> = schedules.iter().map(|s| (s.name.as_str(), s.format)).collect();
    assert_eq!(kept, [("nightly", ImageFormat::Physical)]);
    raw.execute(&image_row("clone"), &[&Uuid::new_v4(), &Uuid::new_v4(), &instance.0]).await.unwrap();
    let bogus = raw.execute(&image_row("bogus"), &[&Uuid::new_v4(), &Uuid::new_v4(), &instance.0]).await;
    assert!(bogus.is_err(), "the check still refuses unknown formats");
    let (other, clones) = (Uuid::new_v4(), "clones".to_string());
    raw.execute(&schedule_row("clone"), &[&other, &Uuid::new_v4(), &clones, &instance.0]).await.unwrap();
    let bogus = raw.execute(&schedule_row("bogus"), &[&Uuid::new_v4(), &Uuid::new_v4(), &name, &instance.0]).await;
    assert!(bogus.is_err(), "on schedules too");

    let export = NewImage::new("export", instance).with_format(ImageFormat::Physical).with_from_image(physical);
    let reserved = catalog.reserve_image(OperationId::new(), &export).await.unwrap();
    assert_eq!(catalog.get_image(reserved.id).await.unwrap().from_image, Some(physical));
    let new = CreateScheduleRequest::new("more", instance, "0 * * * *").with_format(ImageFormat::Clone);
    let created = catalog.create_schedule(OperationId::new(), &new.to_new().unwrap()).await.unwrap();
    assert_eq!(catalog.get_schedule(created.id).await.unwrap().format, ImageFormat::Clone);
    let again = PostgresCatalog::connect(config(), key).await.unwrap();
    assert_eq!(again.get_image(logical).await.unwrap(), old, "a second connect changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_of_version_7_gains_recovery_plans_and_protection() {
    let password = Password::generate();
    let pg = LocalCluster::start_temporary(&password)
        .await
        .expect("start a throw-away PostgreSQL (is PostgreSQL installed? see scripts/setup.sh)");
    let key = CatalogKey::generate();
    let schema = format!("v7_{}", Uuid::new_v4().simple());
    let (_, instance) = previous_release_catalog(&pg, &password, &schema, &key).await;
    let config = || PostgresCatalogConfig::from_pg_config(pg.params().pg_config("postgres", &password)).schema(&schema);
    let mut raw = pg.cluster().connect("postgres", &password).await.unwrap();
    migrate_to(&mut raw, &config(), &quoted_schema(&schema).unwrap(), &key, 7).await.unwrap();
    assert!(!has_column(&raw, &schema, "instances", "protection").await, "version 7 has no protection");

    let catalog = PostgresCatalog::connect(config(), key.clone()).await.unwrap();
    let versions = format!("SELECT max(version) FROM {schema}.schema_version");
    assert_eq!(raw.query_one(&versions, &[]).await.unwrap().get::<_, i64>(0), SCHEMA_VERSION);
    assert!(has_column(&raw, &schema, "instances", "recovery").await, "the upgrade adds the recovery plan");
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
    let again = PostgresCatalog::connect(config(), key).await.unwrap();
    assert_eq!(again.get_instance(instance).await.unwrap(), protected, "a second connect changes nothing");
}

/// Now at the microseconds `timestamptz` keeps.
fn toygres_core_now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
