//! Benchmark: toygres images and restores against the raw tools, measured side by side.
//!
//! ```text
//! cargo run --release --example bench                      # pgbench scale 50 (≈ 0.8 GB), 3 runs
//! cargo run --release --example bench -- --scale 10 --runs 5 --memory-scale 2
//! ```
//!
//! Builds a pgbench database in a local source instance, then, `--runs` times, alternating which
//! side of each pair goes first (odd runs toygres, even runs the other tool) and levelling the
//! page cache before every timed step ([`level`]):
//! raw `pg_dump -Fc` to a file vs a toygres image (catalog in SQLite, images on local disk), and
//! raw `initdb + start + pg_restore -j2` of that file vs a toygres restore to a ready instance
//! (verification of every checksum included). Prints every sample, the medians and their ratios,
//! and this process's peak RSS while imaging at two database sizes (`--memory-scale` and `--scale`).
//!
//! In the same runs it also takes a toygres **physical** image (`pg_basebackup` through zstd) and
//! restores it to a ready instance, and times pgBackRest, the physical backup tool a user would
//! pick instead: a full backup (zst, process-max 2) and restore + start + end of recovery, on the
//! same source. pgBackRest is on by default when `pgbackrest` is on `PATH` (Debian:
//! `apt-get install pgbackrest`); `--pgbackrest` requires it, `--no-pgbackrest` skips it.
//!
//! It ends with one machine-readable line per ratio (toygres time / other time, medians):
//! `RATIO image_vs_pg_dump`, `RATIO restore_vs_naive`, `RATIO physical_backup_vs_pgbackrest`,
//! `RATIO physical_restore_vs_pgbackrest`.

mod level;
mod pgbackrest;
mod raw;
mod stats;

use stats::{list, median, mib, peak_rss_mib, reset_peak_rss};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::{
    CreateImageRequest, CreateInstanceRequest, ImageFormat, InstanceRecord, InstanceSpec, OperationId, Password,
    Toygres,
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
        let keys = Arc::new(toygres_core::envelope::LocalKeys::open_or_create(dir.join("image-keys"))?);
        let toygres = Toygres::new(catalog, blobs, Arc::new(executor.clone())).with_image_keys(keys);
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

    /// One toygres image of `source` in `format`: (time, image id, stored bytes, peak RSS MiB).
    async fn image(
        &self,
        source: &InstanceRecord,
        format: ImageFormat,
    ) -> BoxResult<(Duration, toygres_core::ImageId, u64, f64)> {
        let mut request = CreateImageRequest::new(format!("bench-{format}"), source.id);
        if format == ImageFormat::Physical {
            request = request.physical();
        }
        reset_peak_rss();
        let started = Instant::now();
        let image = self.toygres.create_image(OperationId::new(), request).await?;
        let elapsed = started.elapsed();
        Ok((elapsed, image.id, image.size_bytes.unwrap_or(0), peak_rss_mib()))
    }

    /// Restores `image` to a ready instance (checksums verified), then removes instance and image.
    async fn restore(&self, image: toygres_core::ImageId, name: String) -> BoxResult<Duration> {
        let started = Instant::now();
        let restored =
            self.toygres.create_instance(OperationId::new(), CreateInstanceRequest::restore(name, image)).await?;
        let elapsed = started.elapsed();
        self.toygres.delete_instance(restored.id).await?;
        self.toygres.delete_image(image).await?;
        Ok(elapsed)
    }
}

/// Samples by measurement name.
#[derive(Default)]
struct Samples(BTreeMap<&'static str, Vec<Duration>>);

impl Samples {
    fn push(&mut self, what: &'static str, t: Duration) -> f64 {
        self.0.entry(what).or_default().push(t);
        t.as_secs_f64()
    }

    fn get(&self, what: &str) -> &[Duration] {
        self.0.get(what).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let args = args()?;
    let dir = tempfile::Builder::new().prefix("tgb-").tempdir_in("/var/tmp")?;
    toygres_local::cluster::set_mode(dir.path(), 0o711)?;
    let stack = Stack::new(dir.path())?;
    let password = Password::generate();
    let result = bench(&args, &stack, dir.path(), &password).await;
    stack.executor.discard_blocking();
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
    let mut s = Samples::default();
    let (mut dump_size, mut image_size, mut physical_size, mut pgbr_size, mut peak) = (0, 0, 0, 0, 0.0f64);
    let data_size = level::dir_size(&cluster.data_dir())?;
    // Every timed step starts from the same warm, free page cache ([`level`]).
    let level = || level::level(dir, data_size);
    for run_no in 1..=args.runs {
        // Odd runs time toygres first in each pair, even runs the other tool first.
        let ours_first = run_no % 2 == 1;
        let mut line = format!("  run {run_no} ({} first):", if ours_first { "toygres" } else { "others" });
        let mut images = None;
        for ours in [ours_first, !ours_first] {
            level()?;
            if ours {
                let (t, image, size, rss) = stack.image(&source, ImageFormat::Logical).await?;
                line += &format!(" image {:.2} s,", s.push("image", t));
                (image_size, peak) = (size, peak.max(rss));
                level()?;
                let (t, physical, size, _) = stack.image(&source, ImageFormat::Physical).await?;
                line += &format!(" physical image {:.2} s,", s.push("physical_image", t));
                physical_size = size;
                images = Some((image, physical));
            } else {
                let (t, size) = raw::pg_dump(&cluster, password, DATABASE, &dump_file).await?;
                line += &format!(" pg_dump {:.2} s,", s.push("pg_dump", t));
                dump_size = size;
                if let Some(peer) = &peer {
                    level()?;
                    let (t, size) = peer.backup().await?;
                    line += &format!(" pgBackRest backup {:.2} s,", s.push("pgbackrest_backup", t));
                    pgbr_size = size;
                }
            }
        }
        let (image, physical) = images.expect("toygres imaged");
        line = format!("{};", line.trim_end_matches(','));
        for ours in [ours_first, !ours_first] {
            level()?;
            if ours {
                let t = stack.restore(image, format!("restored-{run_no}")).await?;
                line += &format!(" restore {:.2} s,", s.push("restore", t));
                level()?;
                let t = stack.restore(physical, format!("physical-{run_no}")).await?;
                line += &format!(" physical restore {:.2} s,", s.push("physical_restore", t));
            } else {
                let t = raw::pg_restore(&dir.join(format!("raw-{run_no}")), password, DATABASE, &dump_file).await?;
                line += &format!(" raw restore {:.2} s,", s.push("raw_restore", t));
                if let Some(peer) = &peer {
                    level()?;
                    let t = peer.restore(&dir.join(format!("pgbr-{run_no}")), DATABASE).await?;
                    line += &format!(" pgBackRest restore {:.2} s,", s.push("pgbackrest_restore", t));
                }
            }
        }
        println!("{}", line.trim_end_matches(','));
    }
    let mut ratios = vec![
        ("image_vs_pg_dump", report("image vs pg_dump -Fc", s.get("image"), s.get("pg_dump"))),
        (
            "restore_vs_naive",
            report("restore-to-ready vs initdb+start+pg_restore -j2", s.get("restore"), s.get("raw_restore")),
        ),
    ];
    println!(
        "  sizes: pg_dump -Fc {:.1} MiB, toygres image {:.1} MiB, toygres physical image {:.1} MiB",
        mib(dump_size),
        mib(image_size),
        mib(physical_size)
    );
    if peer.is_some() {
        let pgbr = |what: &'static str, ours: &str, theirs: &str| (what, report(what, s.get(ours), s.get(theirs)));
        ratios.push(pgbr("physical_backup_vs_pgbackrest", "physical_image", "pgbackrest_backup"));
        ratios.push(pgbr("physical_restore_vs_pgbackrest", "physical_restore", "pgbackrest_restore"));
        report("logical image vs pgBackRest backup", s.get("image"), s.get("pgbackrest_backup"));
        report("logical restore vs pgBackRest restore", s.get("restore"), s.get("pgbackrest_restore"));
        println!("  size: pgBackRest full backup (zst) {:.1} MiB", mib(pgbr_size));
    }

    let (small, _) = stack.source("bench-small", args.memory_scale, password).await?;
    let (_, small_image, _, small_peak) = stack.image(&small, ImageFormat::Logical).await?;
    stack.toygres.delete_image(small_image).await?;
    println!(
        "  peak RSS of this process while imaging: scale {} → {:.0} MiB, scale {} → {:.0} MiB",
        args.memory_scale, small_peak, args.scale, peak
    );
    for (name, ratio) in ratios {
        println!("RATIO {name} {ratio:.2}");
    }
    Ok(())
}

/// Prints the medians of `ours` and `theirs` and returns their ratio (toygres / other).
fn report(what: &str, ours: &[Duration], theirs: &[Duration]) -> f64 {
    let (m_ours, m_theirs) = (median(ours), median(theirs));
    let ratio = m_ours.as_secs_f64() / m_theirs.as_secs_f64();
    println!(
        "  {what}: {:.2} s vs {:.2} s → ratio {ratio:.2}  [toygres: {}; other: {}]",
        m_ours.as_secs_f64(),
        m_theirs.as_secs_f64(),
        list(ours),
        list(theirs)
    );
    ratio
}
