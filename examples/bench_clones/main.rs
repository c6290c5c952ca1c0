//! Benchmark of clone images (issue 26, "instant clones"): a toygres clone restore to a ready
//! instance against pgBackRest's restore + start and against toygres's physical restore, measured
//! side by side in the same run, at two pgbench scales, so that it shows whether the clone's
//! restore time grows with the data.
//!
//! Everything (the executor's base directory with the source, the clone store and the restored
//! instances; the toygres image blobs; the pgBackRest repository and restores; the levelling
//! scratch file) is on one filesystem, which must make reflink clones: a dedicated sparse
//! loop-mounted XFS (only its written blocks take space; at scale 200 XFS counted up to 10 GB in
//! use while the source, its WAL and the clone image were there, 7.5 GB during the restores).
//! Keep the mount point short (`/mnt/toygres-bench` works; pgBackRest reaches the source over a
//! Unix socket below it, whose path has at most 107 bytes). As root, from the workspace:
//!
//! ```text
//! export TOYGRES_XFS_IMAGE=/var/tmp/toygres-bench-xfs.img TOYGRES_XFS_SIZE=20G TOYGRES_XFS_MOUNT=/mnt/toygres-bench
//! eval "$(bash .ci/xfs.sh)"          # mounts it, exports TOYGRES_REFLINK_DIR=/mnt/toygres-bench
//! cargo run --release -p toygres-examples --example bench_clones                     # --scales 50,200 --runs 3
//! cargo run --release -p toygres-examples --example bench_clones -- --scales 1,5 --runs 2   # smoke run
//! bash .ci/xfs.sh --destroy           # same variables: unmounts it and deletes the backing file
//! ```
//!
//! With less than about 11 GB free on the root disk, keep the backing file in memory instead
//! (`TOYGRES_XFS_IMAGE=/dev/shm/toygres-bench-xfs.img TOYGRES_XFS_SIZE=12G`; the figures in
//! docs/bench-clones.md were taken so): every side still runs on the same filesystem, and the
//! sides that copy the data (pgBackRest, physical) gain from the faster storage, not the clone.
//! The bench deletes its data as it goes and trims the filesystem after each deletion
//! ([`disk`]), so the backing file shrinks back.
//!
//! For each scale in `--scales` (one after the other; each scale's data is deleted before the
//! next) it builds a pgbench source instance on a `LocalExecutor` (SQLite catalog, images on local
//! disk, encrypted as by default) and configures pgBackRest on it ([`pgbackrest`]: zst,
//! process-max 2, WAL archiving on). It takes, once each and timed, a toygres physical image, a
//! pgBackRest full backup and a toygres clone image of it. No restore reads the source, so its
//! server is then stopped and its data directory removed (the disk holds the clone store, the
//! compressed copies and one restore at a time). Then, `--runs` times, levelling the
//! page cache before every timed step ([`level`]) and alternating the order (odd runs clone,
//! physical, pgBackRest; even runs the reverse), it times:
//!
//! - (a) a toygres restore of the clone image to a ready instance (`create_instance` returns once
//!   the server runs and its connection test passed);
//! - (b) the same from the physical image;
//! - (c) pgBackRest restore + start + end of recovery (until it accepts writes).
//!
//! Each restored instance is checked untimed (`SELECT count(*) FROM pgbench_accounts` = scale ×
//! 100 000; pgBackRest's against the source's count at backup time) and deleted at once.
//!
//! It prints every sample, the medians, the restores' pipeline phases and restore-job segments
//! (medians; [`phases`], [`joblog`]), the image take times and sizes, the load average of each
//! run, and ends with, per scale N, `RATIO clone_restore_vs_pgbackrest_scale<N>` and
//! `RATIO clone_restore_vs_physical_scale<N>` (clone median / other median), and
//! `RATIO clone_scale<max>_vs_scale<min>` (clone restore median at the largest scale / at the
//! smallest). The issue's aims: ≤ 0.10 against pgBackRest at scale 200, ≤ 1.5 from 50 to 200.

mod disk;
#[path = "../bench/joblog.rs"]
mod joblog;
#[path = "../bench/level.rs"]
mod level;
#[path = "../bench/pgbackrest.rs"]
mod pgbackrest;
#[path = "../bench/pgbench.rs"]
mod pgbench;
#[path = "../bench/phases.rs"]
mod phases;
#[path = "../bench/samples.rs"]
mod samples;
mod stack;
// The peak-RSS readers of the other bench are unused here.
#[allow(dead_code)]
#[path = "../bench/stats.rs"]
mod stats;

use disk::Disk;
use phases::Phases;
use stack::{Stack, DATABASE};
use stats::{compare, load_average, median, mib, Samples};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toygres_core::{ImageFormat, Password};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Phases shorter than this (median) are left out of the breakdown.
const SHOWN_PHASE: Duration = Duration::from_millis(20);

struct Args {
    scales: Vec<u32>,
    runs: usize,
    dir: Option<PathBuf>,
}

const USAGE: &str = "usage: bench_clones [--scales N,N (50,200)] [--runs N (3)] \
                     [--dir PATH (default $TOYGRES_REFLINK_DIR): a directory on a reflink filesystem]";

fn args() -> BoxResult<Args> {
    let mut args =
        Args { scales: vec![50, 200], runs: 3, dir: std::env::var_os("TOYGRES_REFLINK_DIR").map(Into::into) };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--scales" => args.scales = value()?.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?,
            "--runs" => args.runs = value()?.parse()?,
            "--dir" => args.dir = Some(value()?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; {USAGE}").into()),
        }
    }
    if args.scales.is_empty() || args.runs == 0 {
        return Err(format!("need at least one scale and one run; {USAGE}").into());
    }
    Ok(args)
}

/// One timed restore: what it restores from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Clone,
    Physical,
    PgBackRest,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Clone => "clone restore",
            Side::Physical => "physical restore",
            Side::PgBackRest => "pgBackRest restore",
        }
    }
}

/// The order of run `run_no`: odd runs clone first, even runs pgBackRest first.
fn order(run_no: usize) -> [Side; 3] {
    match run_no % 2 {
        1 => [Side::Clone, Side::Physical, Side::PgBackRest],
        _ => [Side::PgBackRest, Side::Physical, Side::Clone],
    }
}

/// The sample key of `side`'s restore at `scale`.
fn key(side: Side, scale: u32) -> String {
    format!("{}@{scale}", side.label())
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let args = args()?;
    if !pgbackrest::installed() {
        return Err("no pgbackrest on PATH; install it (apt-get install pgbackrest)".into());
    }
    let base = args.dir.clone().ok_or_else(|| format!("no directory on a reflink filesystem; {USAGE}"))?;
    let mut disk = Disk::of(&base)?;
    let dir = tempfile::Builder::new().prefix("tgc-").tempdir_in(&base)?;
    toygres_local::cluster::set_mode(dir.path(), 0o711)?;
    let stack = Stack::new(dir.path())?;
    let password = Password::generate();
    let result = bench(&args, &stack, &mut disk, dir.path(), &password).await;
    stack.executor.discard_blocking();
    drop(dir);
    let _ = disk.trim();
    result
}

async fn bench(args: &Args, stack: &Stack, disk: &mut Disk, dir: &Path, password: &Password) -> BoxResult<()> {
    let version = stack.executor.binaries().version().await?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "toygres clone bench: pgbench scales {:?}, {} runs, {} on {} ({cores} cores, load {:.1}; medians, ratio \
         clone / other)",
        args.scales,
        args.runs,
        version.trim(),
        disk.mount().display(),
        load_average()
    );
    let (mut s, mut phases) = (Samples::default(), Phases::default());
    for &scale in &args.scales {
        one_scale(args, stack, disk, dir, password, scale, &mut s, &mut phases).await?;
    }

    println!("summary (medians; every sample in brackets):");
    let mut ratios = Vec::new();
    for &scale in &args.scales {
        let (clone, physical, pgbr) =
            (s.get(&key(Side::Clone, scale)), s.get(&key(Side::Physical, scale)), s.get(&key(Side::PgBackRest, scale)));
        let what = format!("scale {scale}: clone restore vs pgBackRest restore + start");
        ratios.push((
            format!("clone_restore_vs_pgbackrest_scale{scale}"),
            compare(&what, clone, pgbr, ("clone", "pgBackRest")),
        ));
        let what = format!("scale {scale}: clone restore vs toygres physical restore");
        ratios.push((
            format!("clone_restore_vs_physical_scale{scale}"),
            compare(&what, clone, physical, ("clone", "physical")),
        ));
        let what = format!("scale {scale}: toygres physical restore vs pgBackRest restore + start");
        compare(&what, physical, pgbr, ("physical", "pgBackRest"));
        for side in [Side::Clone, Side::Physical] {
            println!("    {} phases (medians, s): {}", side.label(), breakdown(&phases, &key(side, scale)));
        }
    }
    let (min, max) = (args.scales.iter().min().expect("a scale"), args.scales.iter().max().expect("a scale"));
    if min != max {
        let what = format!("clone restore at scale {max} vs at scale {min}");
        let ratio =
            compare(&what, s.get(&key(Side::Clone, *max)), s.get(&key(Side::Clone, *min)), ("larger", "smaller"));
        ratios.push((format!("clone_scale{max}_vs_scale{min}"), ratio));
    }
    println!(
        "  peak use of {} seen (with a restored instance; a pgBackRest restore or the levelling takes as much): \
         {:.2} GiB",
        disk.mount().display(),
        mib(disk.peak()) / 1024.0
    );
    for (name, ratio) in ratios {
        println!("RATIO {name} {ratio:.3}");
    }
    Ok(())
}

/// One scale: source, images and backup, then the timed restores; everything of it is deleted
/// at the end.
#[allow(clippy::too_many_arguments)]
async fn one_scale(
    args: &Args,
    stack: &Stack,
    disk: &mut Disk,
    dir: &Path,
    password: &Password,
    scale: u32,
    s: &mut Samples,
    phases: &mut Phases,
) -> BoxResult<()> {
    println!("scale {scale}:");
    let (source, cluster) = stack.source(scale, password).await?;
    let accounts = i64::from(scale) * 100_000;
    let repo = dir.join(format!("pgbackrest-{scale}"));
    let peer = pgbackrest::PgBackRest::setup(&cluster, password, &repo).await?;
    // What a restore writes: the data directory without the WAL the load left in `pg_wal`.
    let data = cluster.data_dir();
    let data_size = level::dir_size(&data)? - level::dir_size(&data.join("pg_wal"))?;
    // Before every timed step: the freed blocks trimmed, the page cache levelled, trimmed again.
    let settle = |disk: &Disk| -> BoxResult<()> {
        disk.trim()?;
        level::level(dir, data_size)?;
        disk.trim()
    };

    // The clone last: the levelling never runs next to both the source and the clone.
    settle(disk)?;
    let physical = stack.image(&source, ImageFormat::Physical).await?;
    settle(disk)?;
    let (backup, backup_size) = peer.backup(DATABASE).await?;
    settle(disk)?;
    let clone = stack.image(&source, ImageFormat::Clone).await?;
    let taken = disk.used()?;
    // No restore reads the source: its server stops and its data goes, so that the disk holds
    // only the clone store and the compressed copies next to the one restore in flight.
    cluster.stop().await?;
    std::fs::remove_dir_all(&data).map_err(|e| format!("removing {}: {e}", data.display()))?;
    println!(
        "  taken once each: physical image {:.2} s ({:.1} MiB stored), pgBackRest full backup {:.2} s ({:.1} MiB), \
         clone image {:.2} s ({:.0} MiB data directory); clone image / physical image {:.2}",
        physical.time.as_secs_f64(),
        mib(physical.size),
        backup.as_secs_f64(),
        mib(backup_size),
        clone.time.as_secs_f64(),
        mib(clone.size),
        clone.time.as_secs_f64() / physical.time.as_secs_f64()
    );
    println!(
        "  source data directory without pg_wal {:.0} MiB; in use with source, images and backup {:.2} GiB; the \
         source's server stopped and its data removed",
        mib(data_size),
        mib(taken) / 1024.0
    );

    for run_no in 1..=args.runs {
        let sides = order(run_no);
        let first = if sides[0] == Side::Clone { "clone" } else { "pgBackRest" };
        let mut line = format!("  run {run_no} ({first} first, load {:.1}):", load_average());
        for side in sides {
            settle(disk)?;
            let name = format!("{}-{scale}-{run_no}", if side == Side::Clone { "clone" } else { "physical" });
            let t = match side {
                Side::Clone | Side::Physical => {
                    let image = if side == Side::Clone { clone.id } else { physical.id };
                    let (t, p, restored) = stack.restore(image, name, password, accounts).await?;
                    phases.push(&key(side, scale), p);
                    disk.used()?;
                    stack.toygres.delete_instance(restored).await?;
                    t
                }
                Side::PgBackRest => peer.restore(&dir.join(format!("pgbr-{scale}-{run_no}")), DATABASE).await?,
            };
            line += &format!(" {} {:.2} s,", side.label(), s.push(&key(side, scale), t));
        }
        println!("{}", line.trim_end_matches(','));
    }

    stack.toygres.delete_image(clone.id).await?;
    stack.toygres.delete_image(physical.id).await?;
    stack.toygres.delete_instance(source.id).await?;
    std::fs::remove_dir_all(&repo).map_err(|e| format!("removing {}: {e}", repo.display()))?;
    disk.trim()?;
    println!(
        "  medians: clone {:.2} s, physical {:.2} s, pgBackRest {:.2} s",
        med(s, Side::Clone, scale),
        med(s, Side::Physical, scale),
        med(s, Side::PgBackRest, scale)
    );
    Ok(())
}

fn med(s: &Samples, side: Side, scale: u32) -> f64 {
    median(s.get(&key(side, scale))).as_secs_f64()
}

/// `step`'s phases at least [`SHOWN_PHASE`] long (median), in the order they first finished.
fn breakdown(phases: &Phases, step: &str) -> String {
    let shown: Vec<String> = phases
        .of(step)
        .iter()
        .filter_map(|(p, _)| {
            let m = phases.median(step, p);
            (m >= SHOWN_PHASE).then(|| format!("{p} {:.2}", m.as_secs_f64()))
        })
        .collect();
    shown.join(", ")
}
