//! Image → restore through the durable runtime on the embedded default: SQLite catalog and
//! duroxide store, images as local files, instances as local PostgreSQL clusters. Each step is
//! printed as it happens; at the end, the durable layer's overhead per pipeline (wall time from
//! start to completed, minus the time spent inside the activities).
//!
//! ```text
//! cargo run --example durable                     # one image and one restore
//! cargo run --release --example durable -- --runs 5 --poll-ms 10   # overhead figures
//! ```
//! Needs PostgreSQL's server binaries (found like `toygres_local::PgBinaries::discover`); as
//! root, the servers run as the `postgres` OS user.

use std::sync::Arc;
use std::time::{Duration, Instant};
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::{CreateImageRequest, CreateInstanceRequest, EventKind, OperationId, Password};
use toygres_core::{ProgressEvent, Result, Subject, Toygres};
use toygres_duroxide::{DurableClient, OperationState, ToygresRuntime};
use toygres_local::fidelity::{sample::load_sample_data, InstanceSnapshot};
use toygres_local::{LocalBlobStore, LocalExecutor};

/// Prints every step as it starts and ends, and bytes at most every 10%.
fn printer(quiet: bool) -> impl Fn(&ProgressEvent) + Send + Sync {
    let last = std::sync::Mutex::new(0u64);
    move |e: &ProgressEvent| {
        if quiet {
            return;
        }
        let who = match e.subject {
            Subject::Image(id) => format!("image {}", id.short()),
            Subject::Instance(id) => format!("instance {}", id.short()),
        };
        match &e.kind {
            EventKind::Started => println!("  {who}: {} ...", e.phase),
            EventKind::Finished { elapsed } => println!("  {who}: {} done in {elapsed:.1?}", e.phase),
            EventKind::Failed { error } => println!("  {who}: {} failed: {error}", e.phase),
            EventKind::Bytes { done, total: Some(total) } if *total > 0 => {
                let tenth = done * 10 / total;
                let mut last = last.lock().unwrap();
                if tenth != *last {
                    *last = tenth;
                    println!("  {who}: {} {done} of {total} bytes", e.phase);
                }
            }
            EventKind::Bytes { .. } => {}
        }
    }
}

/// Waits for `subject`; returns (wall time since `started`, work time, state).
async fn finish(client: &DurableClient, subject: Subject, started: Instant) -> Result<(Duration, Duration)> {
    let status = client.wait(subject, Duration::from_secs(3600)).await?;
    let wall = started.elapsed();
    if status.state != OperationState::Completed {
        return Err(toygres_core::Error::backend_msg("example", format!("{subject:?} ended {status:?}")));
    }
    Ok((wall, client.work_time(subject)))
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(default)
}

/// This process's CPU time (user + system) from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

fn summary(what: &str, overheads: &[Duration]) {
    let ms: Vec<f64> = overheads.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let (min, max) = ms.iter().fold((f64::MAX, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
    println!("durable overhead of {what}: mean {mean:.0} ms (min {min:.0}, max {max:.0}) over {} runs", ms.len());
}

#[tokio::main]
async fn main() -> Result<()> {
    let (runs, poll) = (arg("--runs", 1).max(1), Duration::from_millis(arg("--poll-ms", 10)));
    let dir = tempfile::Builder::new().prefix("toygres-durable-example-").tempdir().expect("temporary directory");
    let blobs = Arc::new(LocalBlobStore::open(dir.path().join("blobs"))?);
    let executor = LocalExecutor::builder(dir.path().join("base"), blobs.clone()).build()?;
    let catalog = Arc::new(SqliteCatalog::open(dir.path().join("catalog.db"), CatalogKey::generate())?);
    let keys = Arc::new(toygres_core::envelope::LocalKeys::open_or_create(dir.path().join("image-keys"))?);
    let toygres = Toygres::new(catalog, blobs, Arc::new(executor.clone()))
        .with_progress(Arc::new(printer(runs > 1)))
        .with_image_keys(keys);

    println!("source instance with sample data ...");
    let password = Password::generate();
    let source = executor.provision_source(&toygres, "source", &password).await?;
    let cluster = executor.cluster(&source.spec())?;
    load_sample_data(&cluster.params(), &password).await?;
    let before = InstanceSnapshot::take(cluster.binaries(), &cluster.params(), &password).await?;

    let store = dir.path().join("durable.db");
    println!("durable runtime on {} (poll every {poll:?})", store.display());
    let mut builder = ToygresRuntime::builder(toygres.clone()).sqlite(&store).poll_interval(poll);
    if let (Some(o), Some(a)) =
        (std::env::args().any(|a| a == "--slots").then(|| arg("--slots", 2)), Some(arg("--acts", 4)))
    {
        builder = builder.concurrency(o as usize, a as usize);
    }
    let runtime = builder.start().await?;
    let client = runtime.client();
    let (mut images, mut restores) = (vec![], vec![]);
    for run in 0..runs {
        let request = CreateImageRequest::new(format!("image-{run}"), source.id);
        let started = Instant::now();
        let image = client.create_image(OperationId::new(), request).await?;
        println!("create-image-{} started", image.id);
        let (wall, work) = finish(&client, Subject::Image(image.id), started).await?;
        println!("image ready in {wall:.1?}: {work:.1?} in activities, {:.1?} durable overhead", wall - work);
        images.push(wall - work);

        let started = Instant::now();
        let request = CreateInstanceRequest::restore(format!("restored-{run}"), image.id);
        let instance = client.create_instance(OperationId::new(), request).await?;
        println!("create-instance-{} (1.0.5) started", instance.id);
        let (wall, work) = finish(&client, Subject::Instance(instance.id), started).await?;
        println!("instance running in {wall:.1?}: {work:.1?} in activities, {:.1?} durable overhead", wall - work);
        restores.push(wall - work);

        let restored = toygres.catalog.get_instance(instance.id).await?;
        let cluster = executor.cluster(&restored.spec())?;
        let after = InstanceSnapshot::take(cluster.binaries(), &cluster.params(), &password).await?;
        let diff = before.diff(&after);
        println!("restored instance equals the source: {}", if diff.is_empty() { "yes" } else { "NO" });
        println!("connect: {}", restored.connection.as_ref().map(|c| c.connection_string()).unwrap_or_default());
        toygres.delete_instance(instance.id).await?;
        toygres.delete_image(image.id).await?;
        if !diff.is_empty() {
            return Err(toygres_core::Error::backend_msg("example", diff.join("\n")));
        }
    }
    summary("create-image", &images);
    summary("create-instance", &restores);
    let idle = Duration::from_secs(arg("--idle-secs", 0));
    if !idle.is_zero() {
        let before = cpu_time();
        tokio::time::sleep(idle).await;
        let share = (cpu_time() - before).as_secs_f64() / idle.as_secs_f64();
        println!("idle runtime (poll {poll:?}): {:.1}% of one core", share * 100.0);
    }
    runtime.shutdown().await;
    toygres.delete_instance(source.id).await?;
    Ok(())
}
