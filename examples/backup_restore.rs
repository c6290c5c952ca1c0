//! Images a real PostgreSQL instance and restores a new one from the image, on this machine only.
//!
//! ```text
//! cargo run --example backup_restore                  # everything in a temporary directory
//! cargo run --example backup_restore -- --rows 2000000 --dir /tmp/toygres-demo
//! ```
//!
//! It creates a source instance (a local cluster run as OS user `postgres` when started as root),
//! loads sample data (two databases owned by a non-superuser role, several schemas, indexes, views,
//! functions, sequences, a large object, non-ASCII text, plus `--rows` bulk rows), takes an image
//! into local files (catalog in SQLite), restores a new instance from it, checks that the restored
//! instance equals the source (schema dump per database, row checksums per table, large objects,
//! roles), prints a summary with timings, and removes everything it created.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::envelope::LocalKeys;
use toygres_core::{
    ClusterExecutor, CreateImageRequest, CreateInstanceRequest, EventKind, ImageState, InstanceRecord, OperationId,
    Password, ProgressEvent, Toygres,
};
use toygres_local::fidelity::{sample::load_sample_data, InstanceSnapshot};
use toygres_local::{LocalBlobStore, LocalExecutor};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    dir: Option<PathBuf>,
    rows: u64,
}

fn args() -> BoxResult<Args> {
    let mut args = Args { dir: None, rows: 200_000 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dir" => args.dir = Some(it.next().ok_or("--dir needs a path")?.into()),
            "--rows" => args.rows = it.next().ok_or("--rows needs a number")?.parse()?,
            "-h" | "--help" => {
                println!("usage: backup_restore [--dir PATH] [--rows N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; try --help").into()),
        }
    }
    Ok(args)
}

/// Prints pipeline phases as they start and finish, and bytes moved by the jobs.
fn progress(event: &ProgressEvent) {
    match &event.kind {
        EventKind::Started => {}
        EventKind::Finished { elapsed } => {
            println!("    {:<18} {:>8.2} s", event.phase.to_string(), elapsed.as_secs_f64())
        }
        EventKind::Failed { error } => println!("    {:<18} failed: {error}", event.phase.to_string()),
        EventKind::Bytes { done, total } => match total {
            Some(total) => println!("    {:<18} {:>8.1} / {:.1} MiB", "  bytes", mib(*done), mib(*total)),
            None => println!("    {:<18} {:>8.1} MiB", "  bytes", mib(*done)),
        },
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Stops every server under the executor when dropped, even after an error.
struct StopAll(LocalExecutor);

impl Drop for StopAll {
    fn drop(&mut self) {
        self.0.discard_blocking();
    }
}

fn catalog_key(dir: &Path) -> BoxResult<CatalogKey> {
    let file = dir.join("catalog.key");
    if let Ok(hex) = std::fs::read_to_string(&file) {
        return Ok(CatalogKey::from_hex(hex.trim())?);
    }
    let key = CatalogKey::generate();
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&file)?;
    std::io::Write::write_all(&mut f, key.to_hex().as_bytes())?;
    Ok(key)
}

async fn snapshot(
    executor: &LocalExecutor,
    record: &InstanceRecord,
    password: &Password,
) -> BoxResult<InstanceSnapshot> {
    let cluster = executor.cluster(&record.spec())?;
    Ok(InstanceSnapshot::take(cluster.binaries(), &cluster.params(), password).await?)
}

fn step(name: &str) {
    println!("\n== {name}");
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let args = args()?;
    let temp = tempfile::Builder::new().prefix("toygres-demo-").tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    println!("toygres backup/restore demo in {}", dir.display());

    let blobs = Arc::new(LocalBlobStore::open(dir.join("images"))?);
    let executor = LocalExecutor::builder(dir.join("local"), blobs.clone()).build()?;
    let _stop_all = StopAll(executor.clone());
    let catalog = Arc::new(SqliteCatalog::open(dir.join("catalog.sqlite"), catalog_key(&dir)?)?);
    // Images are encrypted under a key kept next to the catalog's, like the reference server's.
    let keys = Arc::new(LocalKeys::open_or_create(dir.join("image-keys"))?);
    let t = Toygres::new(catalog, blobs.clone(), Arc::new(executor.clone()))
        .with_progress(Arc::new(progress))
        .with_image_keys(keys);
    let mut timings: Vec<(&str, Duration)> = Vec::new();

    step("source instance");
    let started = Instant::now();
    let password = Password::generate();
    let name = format!("demo-source-{}", &OperationId::new().to_string()[..8]);
    let source = executor.provision_source(&t, &name, &password).await?;
    let conn = executor.connection_info(&source.spec()).await?;
    println!("    {} running at {}", source.name, conn.connection_string());
    timings.push(("create source instance", started.elapsed()));

    step("sample data");
    let started = Instant::now();
    let params = executor.cluster(&source.spec())?.params();
    load_sample_data(&params, &password).await?;
    let client = params.connect("appdb", &password).await?;
    let bulk = format!(
        "SET ROLE app_owner; CREATE TABLE billing.ledger AS SELECT g AS id, md5(g::text) AS digest, \
         now() - g * interval '1 second' AS at FROM generate_series(1, {}) g; \
         ALTER TABLE billing.ledger ADD PRIMARY KEY (id)",
        args.rows
    );
    client.batch_execute(&bulk).await?;
    let source_snapshot = snapshot(&executor, &source, &password).await?;
    let (dbs, tables, rows, los) = source_snapshot.counts();
    println!("    {dbs} databases, {tables} tables, {rows} rows, {los} large object(s)");
    timings.push(("load sample data", started.elapsed()));

    step("image (pg_dump | zstd | sha256 -> local files)");
    let started = Instant::now();
    let request = CreateImageRequest::new("demo-image", source.id);
    let image = t.create_image(OperationId::new(), request).await?;
    let image_time = started.elapsed();
    assert_eq!(image.state, ImageState::Ready);
    println!(
        "    image {} ready: {:.2} MiB, {}",
        image.id,
        mib(image.size_bytes.unwrap_or(0)),
        image.checksum.as_deref().unwrap_or("-")
    );
    timings.push(("image", image_time));

    step("restore (verify, initdb, globals, pg_restore, start, connect)");
    let started = Instant::now();
    let mut request = CreateInstanceRequest::restore(format!("{}-copy", source.name), image.id);
    request.password = Some(Password::generate());
    let restored = t.create_instance(OperationId::new(), request).await?;
    let restore_time = started.elapsed();
    let restored_conn = restored.connection.clone().ok_or("restored instance has no connection info")?;
    println!("    {} running at {}", restored.name, restored_conn.connection_string());
    timings.push(("restore to ready", restore_time));

    step("verify equality");
    let started = Instant::now();
    let copy = snapshot(&executor, &restored, &password).await?;
    let diff = source_snapshot.diff(&copy);
    timings.push(("verify", started.elapsed()));
    if !diff.is_empty() {
        return Err(format!("the restored instance differs from the source:\n{}", diff.join("\n")).into());
    }
    println!("    equal: schemas of {dbs} databases, row checksums of {tables} tables, large objects, roles");

    step("clean up");
    t.delete_instance(restored.id).await?;
    t.delete_image(image.id).await?;
    t.delete_instance(source.id).await?;

    println!("\n== summary");
    for (what, took) in &timings {
        println!("    {what:<24} {:>8.2} s", took.as_secs_f64());
    }
    println!("    {:<24} {:>8.2} MiB ({} rows)", "image size", mib(image.size_bytes.unwrap_or(0)), rows);
    println!("    result: restored instance equals the source");
    Ok(())
}
