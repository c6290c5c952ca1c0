//! Benchmark: toygres images and restores against the raw tools, and encrypted against
//! plaintext toygres images, measured side by side.
//!
//! ```text
//! cargo run --release --example bench                      # pgbench scale 50 (≈ 0.8 GB), 3 runs
//! cargo run --release --example bench -- --scale 10 --runs 5 --memory-scale 2
//! ```
//!
//! Builds a pgbench database in a local source instance, then, `--runs` times, levelling the page
//! cache before every timed step ([`level`]) and alternating the order ([`order`]: odd runs
//! encrypted toygres, plaintext toygres, the other tools; even runs the reverse):
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
//! Toygres images are encrypted (a local key directory, as embedders set it up), so the ratios
//! against the other tools measure encrypted toygres. Every toygres step is also timed on
//! plaintext images (`Toygres::with_plaintext_images`, same catalog, executor and blobs), with
//! each step's pipeline phases for both ([`encryption`]) and the restore job's own steps ([`joblog`]).
//!
//! It ends with one machine-readable line per ratio (medians): toygres time / other time,
//! `RATIO image_vs_pg_dump`, `RATIO restore_vs_naive`, `RATIO physical_backup_vs_pgbackrest`,
//! `RATIO physical_restore_vs_pgbackrest`; encrypted time / plaintext time,
//! `RATIO encrypted_image_vs_plaintext`, `RATIO encrypted_restore_vs_plaintext`,
//! `RATIO encrypted_physical_image_vs_plaintext`, `RATIO encrypted_physical_restore_vs_plaintext`.

mod encryption;
mod joblog;
mod level;
mod pgbackrest;
mod pgbench;
mod phases;
mod raw;
mod samples;
mod stats;

use encryption::plain;
use phases::{PhaseLog, Phases, StepPhases};
use stats::{compare, load_average, mib, peak_rss_mib, reset_peak_rss, Samples};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::{
    CreateImageRequest, CreateInstanceRequest, ImageFormat, ImageId, InstanceRecord, InstanceSpec, OperationId,
    Password, Toygres,
};
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

/// Who a timed step belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Toygres with encrypted images (the default).
    Encrypted,
    /// Toygres with plaintext images.
    Plaintext,
    /// `pg_dump`/`pg_restore` and pgBackRest.
    Others,
}

impl Side {
    /// The sample key of `step` on this toygres side.
    fn key(self, step: &str) -> String {
        match self {
            Side::Plaintext => plain(step),
            _ => step.to_string(),
        }
    }

    /// How the run's line names this toygres side's `step`.
    fn label(self, step: &str) -> String {
        match self {
            Side::Plaintext => format!("plaintext {step}"),
            _ => step.to_string(),
        }
    }
}

/// The order of the sides in run `run_no`: odd runs encrypted toygres first, even runs the other
/// tools first, plaintext toygres between, so each pair compared alternates which goes first.
fn order(run_no: usize) -> [Side; 3] {
    match run_no % 2 {
        1 => [Side::Encrypted, Side::Plaintext, Side::Others],
        _ => [Side::Others, Side::Plaintext, Side::Encrypted],
    }
}

/// The toygres stack under test, in `dir`.
struct Stack {
    /// Encrypts new images (local key directory).
    toygres: Toygres,
    /// The same catalog, executor and blobs, storing new images unencrypted.
    plaintext: Toygres,
    executor: LocalExecutor,
    phases: PhaseLog,
    /// The executor's job logs, and where the bench keeps a restore job's log ([`joblog`]).
    jobs: (PathBuf, PathBuf),
}

/// One toygres image: its time, id, stored bytes, this process's peak RSS (MiB) and its phases.
struct Imaged {
    time: Duration,
    id: ImageId,
    size: u64,
    rss: f64,
    phases: StepPhases,
}

impl Stack {
    fn new(dir: &Path) -> BoxResult<Self> {
        let blobs = Arc::new(LocalBlobStore::open(dir.join("images"))?);
        let executor = LocalExecutor::builder(dir, blobs.clone()).build()?;
        let catalog = Arc::new(SqliteCatalog::open(dir.join("catalog.db"), CatalogKey::generate())?);
        let keys = Arc::new(toygres_core::envelope::LocalKeys::open_or_create(dir.join("image-keys"))?);
        let phases = PhaseLog::default();
        let toygres = Toygres::new(catalog, blobs, Arc::new(executor.clone())).with_progress(Arc::new(phases.clone()));
        let plaintext = toygres.clone().with_plaintext_images();
        Ok(Self {
            toygres: toygres.with_image_keys(keys),
            plaintext,
            executor,
            phases,
            jobs: (dir.join("jobs"), dir.join("kept-job-logs")),
        })
    }

    fn handle(&self, side: Side) -> &Toygres {
        match side {
            Side::Plaintext => &self.plaintext,
            _ => &self.toygres,
        }
    }

    /// A running source instance holding a pgbench database of `scale`.
    async fn source(&self, name: &str, scale: u32, password: &Password) -> BoxResult<(InstanceRecord, InstanceSpec)> {
        let record = self.executor.provision_source(&self.toygres, name, password).await?;
        let spec = record.spec();
        let cluster = self.executor.cluster(&spec)?;
        pgbench::load(&cluster, password, DATABASE, scale).await?;
        Ok((record, spec))
    }

    /// One toygres image of `source` in `format`, encrypted or not as `side` says.
    async fn image(&self, source: &InstanceRecord, format: ImageFormat, side: Side) -> BoxResult<Imaged> {
        let mut request = CreateImageRequest::new(format!("bench-{format}"), source.id);
        if format == ImageFormat::Physical {
            request = request.physical();
        }
        reset_peak_rss();
        self.phases.clear();
        let started = Instant::now();
        let image = self.handle(side).create_image(OperationId::new(), request).await?;
        let time = started.elapsed();
        let phases = self.phases.take();
        if image.encryption.is_some() != (side == Side::Encrypted) {
            return Err(
                format!("image {} is not stored as asked (encrypted: {})", image.id, side == Side::Encrypted).into()
            );
        }
        Ok(Imaged { time, id: image.id, size: image.size_bytes.unwrap_or(0), rss: peak_rss_mib(), phases })
    }

    /// Restores `image` to a ready instance (checksums verified), then removes instance and image.
    async fn restore(&self, image: ImageId, name: String, side: Side) -> BoxResult<(Duration, StepPhases)> {
        let toygres = self.handle(side);
        self.phases.clear();
        let tail = joblog::Tail::start(self.jobs.0.clone(), self.jobs.1.clone());
        let started = Instant::now();
        let restored = toygres.create_instance(OperationId::new(), CreateInstanceRequest::restore(name, image)).await;
        let elapsed = started.elapsed();
        let log = tail.stop().await;
        let restored = restored?;
        let mut phases = self.phases.take();
        phases.extend(joblog::segments(&log));
        toygres.delete_instance(restored.id).await?;
        toygres.delete_image(image).await?;
        Ok((elapsed, phases))
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
    println!(
        "toygres bench: pgbench scale {}, {} runs (medians; ratios toygres / raw and encrypted / plaintext)",
        args.scale, args.runs
    );
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
    let (mut s, mut phases) = (Samples::default(), Phases::default());
    let (mut dump_size, mut pgbr_size, mut peak) = (0, 0, 0.0f64);
    // (logical, physical) stored bytes of the last encrypted and plaintext images.
    let mut sizes = [(0, 0); 2];
    let data_size = level::dir_size(&cluster.data_dir())?;
    // Every timed step starts from the same warm, free page cache ([`level`]).
    let level = || level::level(dir, data_size);
    for run_no in 1..=args.runs {
        let sides = order(run_no);
        let first = if sides[0] == Side::Others { "others" } else { "toygres" };
        let mut line = format!("  run {run_no} ({first} first, load {:.1}):", load_average());
        // (side, logical image, physical image) of each toygres side.
        let mut images = Vec::new();
        for side in sides {
            level()?;
            if side == Side::Others {
                let (t, size) = raw::pg_dump(&cluster, password, DATABASE, &dump_file).await?;
                line += &format!(" pg_dump {:.2} s,", s.push("pg_dump", t));
                dump_size = size;
                if let Some(peer) = &peer {
                    level()?;
                    let (t, size) = peer.backup(DATABASE).await?;
                    line += &format!(" pgBackRest backup {:.2} s,", s.push("pgbackrest_backup", t));
                    pgbr_size = size;
                }
                continue;
            }
            let logical = stack.image(&source, ImageFormat::Logical, side).await?;
            line += &format!(" {} {:.2} s,", side.label("image"), s.push(&side.key("image"), logical.time));
            phases.push(&side.key("image"), logical.phases);
            if side == Side::Encrypted {
                peak = peak.max(logical.rss);
            }
            level()?;
            let physical = stack.image(&source, ImageFormat::Physical, side).await?;
            let key = side.key("physical_image");
            line += &format!(" {} {:.2} s,", side.label("physical image"), s.push(&key, physical.time));
            phases.push(&key, physical.phases);
            sizes[(side == Side::Plaintext) as usize] = (logical.size, physical.size);
            images.push((side, logical.id, physical.id));
        }
        line = format!("{};", line.trim_end_matches(','));
        for side in sides {
            level()?;
            if side == Side::Others {
                let t = raw::pg_restore(&dir.join(format!("raw-{run_no}")), password, DATABASE, &dump_file).await?;
                line += &format!(" raw restore {:.2} s,", s.push("raw_restore", t));
                if let Some(peer) = &peer {
                    level()?;
                    let t = peer.restore(&dir.join(format!("pgbr-{run_no}")), DATABASE).await?;
                    line += &format!(" pgBackRest restore {:.2} s,", s.push("pgbackrest_restore", t));
                }
                continue;
            }
            let &(_, image, physical) = images.iter().find(|(s, ..)| *s == side).expect("toygres imaged");
            let prefix = if side == Side::Plaintext { "plain-" } else { "" };
            let (t, p) = stack.restore(image, format!("{prefix}restored-{run_no}"), side).await?;
            line += &format!(" {} {:.2} s,", side.label("restore"), s.push(&side.key("restore"), t));
            phases.push(&side.key("restore"), p);
            level()?;
            let (t, p) = stack.restore(physical, format!("{prefix}physical-{run_no}"), side).await?;
            let key = side.key("physical_restore");
            line += &format!(" {} {:.2} s,", side.label("physical restore"), s.push(&key, t));
            phases.push(&key, p);
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
    let [(image_size, physical_size), (plain_size, plain_physical_size)] = sizes;
    println!(
        "  sizes: pg_dump -Fc {:.1} MiB, toygres image {:.1} MiB (plaintext {:.1}), toygres physical image \
         {:.1} MiB (plaintext {:.1})",
        mib(dump_size),
        mib(image_size),
        mib(plain_size),
        mib(physical_size),
        mib(plain_physical_size)
    );
    if peer.is_some() {
        let pgbr = |what: &'static str, ours: &str, theirs: &str| (what, report(what, s.get(ours), s.get(theirs)));
        ratios.push(pgbr("physical_backup_vs_pgbackrest", "physical_image", "pgbackrest_backup"));
        ratios.push(pgbr("physical_restore_vs_pgbackrest", "physical_restore", "pgbackrest_restore"));
        report("logical image vs pgBackRest backup", s.get("image"), s.get("pgbackrest_backup"));
        report("logical restore vs pgBackRest restore", s.get("restore"), s.get("pgbackrest_restore"));
        println!("  size: pgBackRest full backup (zst) {:.1} MiB", mib(pgbr_size));
    }
    ratios.extend(encryption::report(&s, &phases));
    let (seal, open) = encryption::rates()?;
    println!(
        "  AES-256-GCM on one core here: seals {seal:.0} MiB/s, opens {open:.0} MiB/s (image {:.2} s / {:.2} s, \
         physical image {:.2} s / {:.2} s)",
        mib(image_size) / seal,
        mib(image_size) / open,
        mib(physical_size) / seal,
        mib(physical_size) / open
    );

    let (small, _) = stack.source("bench-small", args.memory_scale, password).await?;
    let small_image = stack.image(&small, ImageFormat::Logical, Side::Encrypted).await?;
    stack.toygres.delete_image(small_image.id).await?;
    println!(
        "  peak RSS of this process while imaging: scale {} → {:.0} MiB, scale {} → {:.0} MiB",
        args.memory_scale, small_image.rss, args.scale, peak
    );
    for (name, ratio) in ratios {
        println!("RATIO {name} {ratio:.2}");
    }
    Ok(())
}

/// Prints the medians of `ours` and `theirs` and returns their ratio (toygres / other).
fn report(what: &str, ours: &[Duration], theirs: &[Duration]) -> f64 {
    compare(what, ours, theirs, ("toygres", "other"))
}
