//! Benchmark: toygres images and restores against the raw tools, measured side by side.
//!
//! ```text
//! cargo run --release --example bench                      # pgbench scale 50 (≈ 0.8 GB), 3 runs
//! cargo run --release --example bench -- --scale 10 --runs 5 --memory-scale 2
//! ```
//!
//! Builds a pgbench database in a local source instance, then alternates, `--runs` times:
//! raw `pg_dump -Fc` to a file vs a toygres image (catalog in SQLite, images on local disk), and
//! raw `initdb + start + pg_restore -j2` of that file vs a toygres restore to a ready instance
//! (verification of every checksum included). Prints every sample, the medians and their ratios,
//! and this process's peak RSS while imaging at two database sizes (`--memory-scale` and `--scale`).
//!
//! In the same runs, on the same source, it times pgBackRest, the physical backup tool a user would
//! pick instead: a full backup (zst, process-max 2) vs the image, and restore + start + end of
//! recovery vs the toygres restore. On by default when `pgbackrest` is on `PATH` (Debian:
//! `apt-get install pgbackrest`); `--pgbackrest` requires it, `--no-pgbackrest` skips it.

mod pgbackrest;
mod raw;
mod stats;

use stats::{list, median, mib, peak_rss_mib, reset_peak_rss};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::{
    CreateImageRequest, CreateInstanceRequest, InstanceRecord, InstanceSpec, OperationId, Password, Toygres,
};
use toygres_local::cluster::process::run;
use toygres_local::{LocalBlobStore, LocalExecutor};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const DATABASE: &str = "bench";

struct Args {
    scale: u32,
    memory_scale: u32,
    runs: usize,
    pgbackrest: bool,
}

fn args() -> BoxResult<Args> {
    let mut args = Args { scale: 50, memory_scale: 10, runs: 3, pgbackrest: pgbackrest::installed() };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a number"));
        match arg.as_str() {
            "--scale" => args.scale = value()?.parse()?,
            "--memory-scale" => args.memory_scale = value()?.parse()?,
            "--runs" => args.runs = value()?.parse()?,
            "--pgbackrest" if !pgbackrest::installed() => {
                return Err("--pgbackrest: no pgbackrest on PATH; install it (apt-get install pgbackrest)".into())
            }
            "--pgbackrest" => args.pgbackrest = true,
            "--no-pgbackrest" => args.pgbackrest = false,
            "-h" | "--help" => {
                println!(
                    "usage: bench [--scale N (50)] [--memory-scale N (10)] [--runs N (3)] \
                     [--pgbackrest | --no-pgbackrest (default: on if installed)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; try --help").into()),
        }
    }
    Ok(args)
}

/// The toygres stack under test, in `dir`.
struct Stack {
    toygres: Toygres,
    executor: LocalExecutor,
}

impl Stack {
    fn new(dir: &Path) -> BoxResult<Self> {
        let blobs = Arc::new(LocalBlobStore::open(dir.join("images"))?);
        let executor = LocalExecutor::builder(dir, blobs.clone()).build()?;
        let catalog = Arc::new(SqliteCatalog::open(dir.join("catalog.db"), CatalogKey::generate())?);
        let toygres = Toygres::new(catalog, blobs, Arc::new(executor.clone()));
        Ok(Self { toygres, executor })
    }

    /// A running source instance holding a pgbench database of `scale`.
    async fn source(&self, name: &str, scale: u32, password: &Password) -> BoxResult<(InstanceRecord, InstanceSpec)> {
        let record = self.executor.provision_source(&self.toygres, name, password).await?;
        let spec = record.spec();
        let cluster = self.executor.cluster(&spec)?;
        let mut create = cluster.client("createdb", password);
        create.arg(DATABASE);
        run(create, "createdb", &[password.expose()]).await?;
        let mut init = cluster.client("pgbench", password);
        init.args(["--initialize", "--quiet", "--scale"]).arg(scale.to_string()).arg(DATABASE);
        let started = Instant::now();
        run(init, "pgbench --initialize", &[password.expose()]).await?;
        println!("  pgbench scale {scale} loaded in {:.1} s", started.elapsed().as_secs_f64());
        Ok((record, spec))
    }

    /// One toygres image of `source`: (time, image id, stored bytes, peak RSS MiB).
    async fn image(&self, source: &InstanceRecord) -> BoxResult<(Duration, toygres_core::ImageId, u64, f64)> {
        let request = CreateImageRequest::new("bench", source.id);
        reset_peak_rss();
        let started = Instant::now();
        let image = self.toygres.create_image(OperationId::new(), request).await?;
        let elapsed = started.elapsed();
        Ok((elapsed, image.id, image.size_bytes.unwrap_or(0), peak_rss_mib()))
    }
}

struct Samples {
    raw_dump: Vec<Duration>,
    image: Vec<Duration>,
    raw_restore: Vec<Duration>,
    restore: Vec<Duration>,
    pgbr_backup: Vec<Duration>,
    pgbr_restore: Vec<Duration>,
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let args = args()?;
    let dir = tempfile::Builder::new().prefix("tgb-").tempdir_in("/var/tmp")?;
    toygres_local::cluster::set_mode(dir.path(), 0o711)?;
    let stack = Stack::new(dir.path())?;
    let password = Password::generate();
    let result = bench(&args, &stack, dir.path(), &password).await;
    for cluster in stack.executor.instance_clusters() {
        cluster.stop_blocking();
    }
    result
}

async fn bench(args: &Args, stack: &Stack, dir: &Path, password: &Password) -> BoxResult<()> {
    println!("toygres bench: pgbench scale {}, {} runs (medians; ratios toygres / raw)", args.scale, args.runs);
    let (source, spec) = stack.source("bench-source", args.scale, password).await?;
    let cluster = stack.executor.cluster(&spec)?;
    let dump_file = dir.join("raw.dump");
    let peer = match args.pgbackrest {
        true => Some(pgbackrest::PgBackRest::setup(&cluster, password, &dir.join("pgbackrest")).await?),
        false if pgbackrest::installed() => {
            println!("  pgBackRest: skipped (--no-pgbackrest)");
            None
        }
        false => {
            println!("  pgBackRest: not installed (apt-get install pgbackrest), skipped");
            None
        }
    };
    let mut s = Samples {
        raw_dump: vec![],
        image: vec![],
        raw_restore: vec![],
        restore: vec![],
        pgbr_backup: vec![],
        pgbr_restore: vec![],
    };
    let (mut dump_size, mut image_size, mut pgbr_size, mut peak) = (0, 0, 0, 0.0f64);
    for run_no in 1..=args.runs {
        let (t, size) = raw::pg_dump(&cluster, password, DATABASE, &dump_file).await?;
        s.raw_dump.push(t);
        dump_size = size;
        let (t, image, size, rss) = stack.image(&source).await?;
        s.image.push(t);
        (image_size, peak) = (size, peak.max(rss));
        if let Some(peer) = &peer {
            let (t, size) = peer.backup().await?;
            s.pgbr_backup.push(t);
            pgbr_size = size;
        }

        s.raw_restore.push(raw::pg_restore(&dir.join(format!("raw-{run_no}")), password, DATABASE, &dump_file).await?);
        let started = Instant::now();
        let name = format!("restored-{run_no}");
        let restored =
            stack.toygres.create_instance(OperationId::new(), CreateInstanceRequest::restore(name, image)).await?;
        s.restore.push(started.elapsed());
        stack.toygres.delete_instance(restored.id).await?;
        stack.toygres.delete_image(image).await?;
        let mut peer_times = String::new();
        if let Some(peer) = &peer {
            let t = peer.restore(&dir.join(format!("pgbr-{run_no}")), DATABASE).await?;
            s.pgbr_restore.push(t);
            let backup = s.pgbr_backup[run_no - 1].as_secs_f64();
            peer_times = format!("; pgBackRest backup {backup:.2} s, restore {:.2} s", t.as_secs_f64());
        }
        println!(
            "  run {run_no}: pg_dump {:.2} s, image {:.2} s, raw restore {:.2} s, restore {:.2} s{peer_times}",
            s.raw_dump[run_no - 1].as_secs_f64(),
            s.image[run_no - 1].as_secs_f64(),
            s.raw_restore[run_no - 1].as_secs_f64(),
            s.restore[run_no - 1].as_secs_f64()
        );
    }
    report("image vs pg_dump -Fc", &s.image, &s.raw_dump);
    report("restore-to-ready vs initdb+start+pg_restore -j2", &s.restore, &s.raw_restore);
    println!("  sizes: pg_dump -Fc {:.1} MiB, toygres image {:.1} MiB", mib(dump_size), mib(image_size));
    if peer.is_some() {
        report_peer("pgBackRest backup vs toygres image", &s.pgbr_backup, &s.image);
        report_peer("pgBackRest restore-to-ready vs toygres restore", &s.pgbr_restore, &s.restore);
        println!("  size: pgBackRest full backup (zst) {:.1} MiB", mib(pgbr_size));
    }

    let (small, _) = stack.source("bench-small", args.memory_scale, password).await?;
    let (_, small_image, _, small_peak) = stack.image(&small).await?;
    stack.toygres.delete_image(small_image).await?;
    println!(
        "  peak RSS of this process while imaging: scale {} → {:.0} MiB, scale {} → {:.0} MiB",
        args.memory_scale, small_peak, args.scale, peak
    );
    Ok(())
}

fn report(what: &str, ours: &[Duration], raw: &[Duration]) {
    let (m_ours, m_raw) = (median(ours), median(raw));
    println!(
        "  {what}: {:.2} s vs {:.2} s → ratio {:.2}  [toygres: {}; raw: {}]",
        m_ours.as_secs_f64(),
        m_raw.as_secs_f64(),
        m_ours.as_secs_f64() / m_raw.as_secs_f64(),
        list(ours),
        list(raw)
    );
}

/// `peer` (pgBackRest) first, then toygres, ratio toygres / pgBackRest.
fn report_peer(what: &str, peer: &[Duration], ours: &[Duration]) {
    let (m_peer, m_ours) = (median(peer), median(ours));
    println!(
        "  {what}: {:.2} s vs {:.2} s → ratio toygres/pgBackRest {:.2}  [pgBackRest: {}; toygres: {}]",
        m_peer.as_secs_f64(),
        m_ours.as_secs_f64(),
        m_ours.as_secs_f64() / m_peer.as_secs_f64(),
        list(peer),
        list(ours)
    );
}
