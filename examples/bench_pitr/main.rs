//! Benchmark of point-in-time restore (issue 27): the time to a ready instance of a toygres
//! restore to the latest moment with `--wal-mb` (1024) of WAL after the base image, against raw
//! PostgreSQL (`pg_basebackup` + a plain `cp` WAL archive + `restore_command`) and against
//! pgBackRest (full backup + `archive-push`, `pgbackrest restore`), measured side by side in the
//! same run on the same WAL; the restore job's WAL fetch rate against its replay rate (the fetch
//! must never be the bottleneck); and the RPO of the toygres archive under pgbench load.
//!
//! As root, from the workspace (PostgreSQL binaries discovered as by the executor; `pgbackrest`
//! on `PATH`, Debian: `apt-get install pgbackrest`):
//!
//! ```text
//! cargo run --release -p toygres-examples --example bench_pitr                            # --wal-mb 1024 --runs 3
//! cargo run --release -p toygres-examples --example bench_pitr -- --wal-mb 256 --runs 1  # smoke run
//! ```
//!
//! Everything is in one temporary directory (`--dir`, default the system's; keep it short:
//! pgBackRest reaches the source over a Unix socket below it, whose path has at most 107 bytes),
//! removed at the end with every server the bench started. With `--wal-mb 1024` it needs about
//! 4 GB there (the source's `pg_wal`, the plain archive, the two compressed archives, one
//! restore at a time).
//!
//! Steps: a source instance on a `LocalExecutor` (SQLite catalog, images on local disk,
//! encrypted as by default) is loaded with `pgbench -i -s <scale>` (10), and pgBackRest is
//! configured on it (`examples/bench/pgbackrest.rs`: zst, process-max 2; WAL archiving on,
//! a restart); its `archive_command` becomes a script that copies each segment into the plain
//! archive and then runs `pgbackrest archive-push` ([`plain`]). Then it is protected
//! (`Toygres::protect`: `pg_receivewal` into the blob store) and, one right after the other, the
//! three bases are taken: toygres's base image (waited for until the recovery window opens),
//! `pg_basebackup -Ft -X fetch` and a pgBackRest full backup. pgbench (`--clients`, 2) runs until
//! the WAL position moved by `--wal-mb`, while `recovery_window(..).rpo_seconds` is sampled every
//! 250 ms ([`load`]); then the last segment is switched and every archive waited for.
//!
//! `--runs` times (the page cache levelled before every timed step, [`level`]; odd runs toygres,
//! raw, pgBackRest; even runs the reverse) it times, each to "accepts writes":
//!
//! - (a) a toygres restore to the latest moment (`create_instance` returns once the instance
//!   runs, promoted, and its connection test passed), with the job's `WAL fetched:` line ([`pitr`]);
//! - (b) raw PostgreSQL: untar the base backup, `recovery.signal`, `restore_command = 'cp ..'`,
//!   `pg_ctl start`, until `pg_is_in_recovery()` is false;
//! - (c) `pgbackrest restore` (default type: to the end of the archive) + start, the same way.
//!
//! Each restored instance is checked untimed (its `pgbench_history` rows equal the source's at
//! the end of the load) and deleted at once. It prints every sample, the medians, the toygres
//! restore job's segments, and ends with `FIGURE` lines (WAL MB replayed, fetch and replay
//! MB/s, RPO median / p95 / max under the load, seconds) and `RATIO pitr_restore_vs_raw`,
//! `RATIO pitr_restore_vs_pgbackrest` (toygres median / other median) and
//! `RATIO wal_fetch_rate_vs_replay_rate` (medians; above 1 when the fetch is never what replay
//! waits for). Figures of a run are in docs/bench-pitr.md.

#[path = "../bench/joblog.rs"]
mod joblog;
#[path = "../bench/level.rs"]
mod level;
mod load;
// Its restore is replaced by `plain::pgbackrest_restore`, which checks the WAL's rows.
#[allow(dead_code)]
#[path = "../bench/pgbackrest.rs"]
mod pgbackrest;
#[path = "../bench/pgbench.rs"]
mod pgbench;
#[path = "../bench/phases.rs"]
mod phases;
mod pitr;
mod plain;
#[path = "../bench/samples.rs"]
mod samples;
// Only its constructor and pgbench source are used here (the restores are of images).
#[allow(dead_code)]
#[path = "../bench_clones/stack.rs"]
mod stack;
// The peak-RSS readers of the other bench are unused here.
#[allow(dead_code)]
#[path = "../bench/stats.rs"]
mod stats;

use phases::Phases;
use stack::{Stack, DATABASE};
use stats::{compare, load_average, median, mib, Samples};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use toygres_core::{OperationId, Password};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    wal_mb: u64,
    runs: usize,
    scale: u32,
    clients: u32,
    dir: Option<PathBuf>,
}

const USAGE: &str = "usage: bench_pitr [--wal-mb N (1024)] [--runs N (3)] [--scale N (10)] [--clients N (2)] \
                     [--dir PATH (default: the system's temporary directory)]";

fn args() -> BoxResult<Args> {
    let mut args = Args { wal_mb: 1024, runs: 3, scale: 10, clients: 2, dir: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--wal-mb" => args.wal_mb = value()?.parse()?,
            "--runs" => args.runs = value()?.parse()?,
            "--scale" => args.scale = value()?.parse()?,
            "--clients" => args.clients = value()?.parse()?,
            "--dir" => args.dir = Some(value()?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; {USAGE}").into()),
        }
    }
    if args.wal_mb == 0 || args.runs == 0 || args.scale == 0 || args.clients == 0 {
        return Err(format!("every value must be at least 1; {USAGE}").into());
    }
    Ok(args)
}

/// One timed restore: where it restores from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Toygres,
    Raw,
    PgBackRest,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Toygres => "toygres PITR restore",
            Side::Raw => "raw PostgreSQL restore",
            Side::PgBackRest => "pgBackRest restore",
        }
    }
}

/// The order of run `run_no`: odd runs toygres first, even runs pgBackRest first.
fn order(run_no: usize) -> [Side; 3] {
    match run_no % 2 {
        1 => [Side::Toygres, Side::Raw, Side::PgBackRest],
        _ => [Side::PgBackRest, Side::Raw, Side::Toygres],
    }
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let args = args()?;
    if !pgbackrest::installed() {
        return Err("no pgbackrest on PATH; install it (apt-get install pgbackrest)".into());
    }
    let mut builder = tempfile::Builder::new();
    builder.prefix("tgp-");
    let dir = match &args.dir {
        Some(base) => builder.tempdir_in(base)?,
        None => builder.tempdir()?,
    };
    toygres_local::cluster::set_mode(dir.path(), 0o711)?;
    let stack = Stack::new(dir.path())?;
    let password = Password::generate();
    let result = bench(&args, &stack, dir.path(), &password).await;
    stack.executor.discard_blocking();
    drop(dir);
    result
}

/// `p` (0..=1) of `values`, nearest rank.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn median_f64(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

async fn bench(args: &Args, stack: &Stack, dir: &Path, password: &Password) -> BoxResult<()> {
    let version = stack.executor.binaries().version().await?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "toygres point-in-time restore bench: {} MiB of WAL after the base, pgbench scale {} with {} clients, {} \
         runs, {} in {} ({cores} cores, load {:.1}; medians, ratio toygres / other)",
        args.wal_mb,
        args.scale,
        args.clients,
        args.runs,
        version.trim(),
        dir.display(),
        load_average()
    );
    let t = &stack.toygres;
    let (source, cluster) = stack.source(args.scale, password).await?;
    let peer = pgbackrest::PgBackRest::setup(&cluster, password, &dir.join("pgbackrest")).await?;
    let conf = dir.join("pgbackrest/pgbackrest.conf");
    let raw = plain::Plain::setup(&cluster, password, &dir.join("raw"), &conf).await?;

    // The three bases, one right after the other.
    let started = Instant::now();
    t.protect(source.id).await?;
    let request = t.base_image_request(source.id).await?.ok_or("a protected instance without a base needs one")?;
    let base = t.create_image(OperationId::new(), request).await?;
    while t.recovery_window(source.id).await?.earliest.is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            return Err("the recovery window never opened".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let protected = started.elapsed();
    let (basebackup, basebackup_size) = raw.base_backup().await?;
    let (backup, backup_size) = peer.backup(DATABASE).await?;
    println!(
        "  bases: toygres protect + base image until the window opened {:.2} s ({:.1} MiB stored), pg_basebackup \
         {:.2} s ({:.1} MiB), pgBackRest full backup {:.2} s ({:.1} MiB)",
        protected.as_secs_f64(),
        mib(base.size_bytes.unwrap_or(0)),
        basebackup.as_secs_f64(),
        mib(basebackup_size),
        backup.as_secs_f64(),
        mib(backup_size)
    );

    println!("  load: pgbench until {} MiB of WAL were written", args.wal_mb);
    let wal_bytes = args.wal_mb << 20;
    let load = load::run(t, source.id, &cluster, password, DATABASE, wal_bytes, args.clients).await?;
    let (history, archiver, archive) = load::seal(t, source.id, &cluster, password, DATABASE).await?;
    let rpo = &load.rpo;
    let (rpo_med, rpo_p95, rpo_max) =
        (median_f64(rpo), percentile(rpo, 0.95), rpo.iter().copied().fold(f64::NAN, f64::max));
    let (segments, plain_bytes) = raw.archived()?;
    println!(
        "  load: {:.0} MiB of WAL in {:.1} s ({:.1} MiB/s, {} transactions, {:.0} tps); RPO over {} samples: median \
         {rpo_med:.2} s, p95 {rpo_p95:.2} s, max {rpo_max:.2} s",
        mib(load.wal_bytes),
        load.took.as_secs_f64(),
        mib(load.wal_bytes) / load.took.as_secs_f64(),
        load.transactions,
        load.transactions as f64 / load.took.as_secs_f64(),
        rpo.len()
    );
    println!(
        "  after the load: archive_command caught up in {:.2} s, the toygres archive's head in {:.2} s; plain \
         archive {segments} files, {:.0} MiB; the source holds {history} pgbench_history rows",
        archiver.as_secs_f64(),
        archive.as_secs_f64(),
        mib(plain_bytes)
    );
    let data_size = level::dir_size(&cluster.data_dir())? - level::dir_size(&cluster.data_dir().join("pg_wal"))?;

    let (mut s, mut phases, mut replays) = (Samples::default(), Phases::default(), Vec::new());
    for run_no in 1..=args.runs {
        let sides = order(run_no);
        let first = if sides[0] == Side::Toygres { "toygres" } else { "pgBackRest" };
        let mut line = format!("  run {run_no} ({first} first, load {:.1}):", load_average());
        for side in sides {
            level::level(dir, data_size)?;
            let check = (DATABASE, history);
            let t = match side {
                Side::Toygres => {
                    let name = format!("pitr-{run_no}");
                    let r = pitr::restore(t, &stack.executor, dir, source.id, name, password, check).await?;
                    stack.toygres.delete_instance(r.id).await?;
                    phases.push(side.label(), r.segments);
                    replays.push(r.replay);
                    println!(
                        "    toygres job: WAL fetched {:.1} MB in {:.2} s ({:.1} MB/s), replayed and promoted in \
                         {:.2} s ({:.1} MB/s; server start + replay until promoted {}, the rest what the job does \
                         after the promotion)",
                        r.replay.mb(),
                        r.replay.fetch_s,
                        r.replay.fetch_rate(),
                        r.replay.replay_s,
                        r.replay.replay_rate(),
                        r.replay.to_promotion_s.map_or("?".into(), |s| format!("{s:.2} s"))
                    );
                    r.time
                }
                Side::Raw => raw.restore(&dir.join(format!("raw-{run_no}")), check).await?,
                Side::PgBackRest => {
                    let into = dir.join(format!("pgbr-{run_no}"));
                    plain::pgbackrest_restore(&cluster, password, &conf, &into, check).await?
                }
            };
            line += &format!(" {} {:.2} s,", side.label(), s.push(side.label(), t));
        }
        println!("{}", line.trim_end_matches(','));
    }

    stack.toygres.delete_image(base.id).await.ok();
    stack.toygres.delete_instance(source.id).await?;

    println!("summary (medians; every sample in brackets):");
    let (ours, raw_s, pgbr) = (s.get(Side::Toygres.label()), s.get(Side::Raw.label()), s.get(Side::PgBackRest.label()));
    let vs_raw = compare("toygres PITR restore vs raw PostgreSQL", ours, raw_s, ("toygres", "raw"));
    let vs_pgbr = compare("toygres PITR restore vs pgBackRest", ours, pgbr, ("toygres", "pgBackRest"));
    compare("raw PostgreSQL vs pgBackRest", raw_s, pgbr, ("raw", "pgBackRest"));
    let shown: Vec<String> = phases
        .of(Side::Toygres.label())
        .iter()
        .map(|(p, _)| format!("{p} {:.2}", phases.median(Side::Toygres.label(), p).as_secs_f64()))
        .collect();
    println!("    toygres restore job segments (medians, s): {}", shown.join(", "));
    let list = |f: fn(&pitr::Replay) -> f64| replays.iter().map(f).collect::<Vec<f64>>();
    let (mb, fetch, replay) = (list(pitr::Replay::mb), list(pitr::Replay::fetch_rate), list(pitr::Replay::replay_rate));
    let show = |v: &[f64]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" ");
    println!(
        "  toygres WAL: {:.1} MB placed; fetch {:.1} MB/s [{}], replay {:.1} MB/s [{}] (median of {} runs)",
        median_f64(&mb),
        median_f64(&fetch),
        show(&fetch),
        median_f64(&replay),
        show(&replay),
        replays.len()
    );
    println!("FIGURE wal_mib_written_after_base {:.1}", mib(load.wal_bytes));
    println!("FIGURE pitr_wal_mb_replayed {:.1}", median_f64(&mb));
    println!("FIGURE pitr_wal_fetch_mb_per_s {:.1}", median_f64(&fetch));
    println!("FIGURE pitr_wal_replay_mb_per_s {:.1}", median_f64(&replay));
    println!("FIGURE pitr_restore_median_s {:.2}", median(ours).as_secs_f64());
    println!("FIGURE raw_pitr_restore_median_s {:.2}", median(raw_s).as_secs_f64());
    println!("FIGURE pgbackrest_pitr_restore_median_s {:.2}", median(pgbr).as_secs_f64());
    println!("FIGURE rpo_under_pgbench_median_s {rpo_med:.2}");
    println!("FIGURE rpo_under_pgbench_p95_s {rpo_p95:.2}");
    println!("FIGURE rpo_under_pgbench_max_s {rpo_max:.2}");
    println!("RATIO pitr_restore_vs_raw {vs_raw:.3}");
    println!("RATIO pitr_restore_vs_pgbackrest {vs_pgbr:.3}");
    println!("RATIO wal_fetch_rate_vs_replay_rate {:.3}", median_f64(&fetch) / median_f64(&replay));
    Ok(())
}
