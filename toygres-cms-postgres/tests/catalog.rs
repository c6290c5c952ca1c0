//! The PostgreSQL catalog against a real PostgreSQL started by the tests.

mod support;

use support::{fresh_name, server};
use toygres_cms_postgres::{PostgresCatalog, PostgresCatalogConfig};
use toygres_core::crypto::{image_record, instance_record, CatalogKey};
use toygres_core::testing::catalog_suite::{self, new_image, new_instance, ready_update};
use toygres_core::{CatalogStore, Error, ImageState, InstanceId, InstanceState, OperationId};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    let server = server().await;
    catalog_suite::run_all(|| server.fresh_catalog(CatalogKey::generate())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_columns_hold_no_plain_password_and_the_key_stays_out() {
    const IMAGE_PW: &str = "image-plaintext-Zq81";
    const INSTANCE_PW: &str = "instance-plaintext-Kx42";
    let server = server().await;
    let key = CatalogKey::generate();
    let catalog = server.fresh_catalog(key.clone()).await;
    let image = catalog.reserve_image(OperationId::new(), &new_image(InstanceId::new(), "img")).await.unwrap();
    catalog.update_image(image.id, ImageState::Creating, ready_update(IMAGE_PW)).await.unwrap();
    let new = new_instance("inst", InstanceState::Provisioning, INSTANCE_PW);
    let instance = catalog.create_instance(OperationId::new(), &new).await.unwrap();

    let raw = server.raw("postgres").await;
    let s = catalog.schema();
    let sealed: Vec<u8> = raw
        .query_one(&format!("SELECT source_password FROM {s}.images WHERE id = $1"), &[&image.id.0])
        .await
        .unwrap()
        .get(0);
    assert!(!sealed.windows(IMAGE_PW.len()).any(|w| w == IMAGE_PW.as_bytes()), "plain image password stored");
    assert_eq!(key.open_for(&sealed, &image_record(image.id)).unwrap().expose(), IMAGE_PW, "the sealed password");
    assert!(key.open(&sealed).is_err(), "sealed bound to its record, not unbound");
    // Every column of every catalog table, as text: no plain password, no key.
    for table in ["images", "instances", "catalog_meta", "schema_version"] {
        let rows = raw.query(&format!("SELECT t::text FROM {s}.{table} t"), &[]).await.unwrap();
        for row in rows {
            let text: String = row.get(0);
            for secret in [IMAGE_PW, INSTANCE_PW, &key.to_hex()] {
                assert!(!text.contains(secret), "{table} holds a secret in plain text: {text}");
            }
        }
    }
    assert_eq!(catalog.instance_password(instance.id).await.unwrap().expose(), INSTANCE_PW);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_racing_on_a_fresh_database_all_succeed() {
    let server = server().await;
    let database = fresh_name("race");
    server.raw("postgres").await.batch_execute(&format!("CREATE DATABASE {database}")).await.unwrap();
    let key = CatalogKey::generate();
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let config =
                PostgresCatalogConfig::from_pg_config(server.pg.params().pg_config(&database, &server.password));
            tokio::spawn(PostgresCatalog::connect(config, key.clone()))
        })
        .collect();
    let mut catalogs = Vec::new();
    for connect in connects {
        catalogs.push(connect.await.unwrap().expect("a racing connect failed"));
    }
    assert!(catalogs.iter().all(|c| c.schema() == "toygres_cms"), "default schema");
    let raw = server.raw(&database).await;
    let versions: i64 = raw.query_one("SELECT count(*) FROM toygres_cms.schema_version", &[]).await.unwrap().get(0);
    assert_eq!(versions, PostgresCatalog::SCHEMA_VERSION, "each migration applied exactly once");
    // They share one catalog.
    let image = catalogs[0].reserve_image(OperationId::new(), &new_image(InstanceId::new(), "x")).await.unwrap();
    assert_eq!(catalogs[3].get_image(image.id).await.unwrap(), image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_from_a_newer_toygres_is_refused() {
    let server = server().await;
    let schema = fresh_name("newer");
    let key = CatalogKey::generate();
    PostgresCatalog::connect(server.config("postgres", &schema), key.clone()).await.unwrap();
    let newer = PostgresCatalog::SCHEMA_VERSION + 5;
    let raw = server.raw("postgres").await;
    raw.execute(&format!("INSERT INTO {schema}.schema_version (version) VALUES ($1)"), &[&newer]).await.unwrap();
    match PostgresCatalog::connect(server.config("postgres", &schema), key).await {
        Err(e @ Error::SchemaTooNew { .. }) => {
            assert!(
                matches!(e, Error::SchemaTooNew { found, supported } if found == newer && supported == PostgresCatalog::SCHEMA_VERSION),
                "{e:?}"
            );
            assert!(e.to_string().contains("upgrade toygres"), "{e}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let max: i64 =
        raw.query_one(&format!("SELECT max(version) FROM {schema}.schema_version"), &[]).await.unwrap().get(0);
    assert_eq!(max, newer, "the newer schema is left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_key_is_refused_and_a_bad_login_is_explained() {
    let server = server().await;
    let schema = fresh_name("key");
    PostgresCatalog::connect(server.config("postgres", &schema), CatalogKey::generate()).await.unwrap();
    let other = PostgresCatalog::connect(server.config("postgres", &schema), CatalogKey::generate()).await;
    assert!(matches!(other, Err(Error::WrongKey)), "{other:?}");

    let wrong = toygres_core::Password::new("wrong-login-pw-7731");
    let config = PostgresCatalogConfig::from_pg_config(server.pg.params().pg_config("postgres", &wrong));
    let e = PostgresCatalog::connect(config, CatalogKey::generate()).await.unwrap_err();
    let text = format!("{e} {e:?}");
    eprintln!("bad login: {e}");
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    assert!(text.contains("user postgres") && text.contains("password"), "{text}");
    assert!(!text.contains("wrong-login-pw-7731"), "the password leaked: {text}");
}

#[tokio::test]
async fn an_unreachable_server_says_where_and_what_to_check() {
    let port = toygres_local::cluster::ports::free_port().unwrap();
    let url = format!("postgresql://cms:unreachable-pw-5521@127.0.0.1:{port}/control");
    let e = PostgresCatalog::connect_url(&url, CatalogKey::generate()).await.unwrap_err();
    let text = format!("{e} {e:?}");
    eprintln!("unreachable: {e}");
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "must name host and port: {text}");
    assert!(text.contains("database control, user cms"), "must name database and user: {text}");
    assert!(text.contains("check that the server is running"), "must say what to check: {text}");
    assert!(!text.contains("unreachable-pw-5521"), "the password leaked: {text}");
}

#[tokio::test]
async fn a_bad_schema_name_is_refused_before_connecting() {
    let port = toygres_local::cluster::ports::free_port().unwrap();
    let config = PostgresCatalogConfig::from_url(&format!("postgresql://u@127.0.0.1:{port}/db"))
        .unwrap()
        .schema("cms\"; DROP SCHEMA public; --");
    let e = PostgresCatalog::connect(config, CatalogKey::generate()).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest { field: "catalog schema", .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_password_moved_to_another_row_is_refused() {
    let server = server().await;
    let key = CatalogKey::generate();
    let catalog = server.fresh_catalog(key.clone()).await;
    let (mut images, mut instances) = (Vec::new(), Vec::new());
    for name in ["a", "b"] {
        let image = catalog.reserve_image(OperationId::new(), &new_image(InstanceId::new(), name)).await.unwrap();
        catalog.update_image(image.id, ImageState::Creating, ready_update(&format!("image-{name}-pw"))).await.unwrap();
        images.push(image.id);
        let new = new_instance(name, InstanceState::Provisioning, &format!("instance-{name}-pw"));
        instances.push(catalog.create_instance(OperationId::new(), &new).await.unwrap().id);
    }

    // Whoever can write the catalog copies A's sealed bytes over B's.
    let raw = server.raw("postgres").await;
    let s = catalog.schema();
    let moves = [
        (format!("UPDATE {s}.images SET source_password = (SELECT source_password FROM {s}.images WHERE id = $1) WHERE id = $2"), images[0].0, images[1].0),
        (format!("UPDATE {s}.instances SET password = (SELECT password FROM {s}.instances WHERE id = $1) WHERE id = $2"), instances[0].0, instances[1].0),
    ];
    for (sql, a, b) in moves {
        assert_eq!(raw.execute(&sql, &[&a, &b]).await.unwrap(), 1);
    }
    let sealed: Vec<u8> = raw
        .query_one(&format!("SELECT password FROM {s}.instances WHERE id = $1"), &[&instances[1].0])
        .await
        .unwrap()
        .get(0);
    assert_eq!(key.open_for(&sealed, &instance_record(instances[0])).unwrap().expose(), "instance-a-pw", "A's bytes");

    let image = catalog.image_source_password(images[1]).await;
    assert!(matches!(image, Err(Error::WrongKey)), "image B must refuse A's sealed password: {image:?}");
    let instance = catalog.instance_password(instances[1]).await;
    assert!(matches!(instance, Err(Error::WrongKey)), "instance B must refuse A's sealed password: {instance:?}");
    assert_eq!(catalog.image_source_password(images[0]).await.unwrap().expose(), "image-a-pw", "A's still opens");
    assert_eq!(catalog.instance_password(instances[0]).await.unwrap().expose(), "instance-a-pw", "A's still opens");
}
