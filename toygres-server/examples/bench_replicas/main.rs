//! Benchmark of replicas (not a timed test): image creations through one `toygres serve` against
//! several sharing one PostgreSQL, and the durable layer's overhead per pipeline on duroxide-pg
//! against SQLite.
//!
//! ```text
//! cargo build --release -p toygres-server --features postgres --bin toygres
//! cargo run --release -p toygres-server --features postgres --example bench_replicas
//! cargo run --release -p toygres-server --features postgres --example bench_replicas -- --rows 500000 --runs 5
//! ```
//!
//! It starts a throw-away PostgreSQL (the replicas' catalog and durable store) and then:
//!
//! 1. **Replicas** ([`burst`]): real `toygres serve` processes of the `toygres` binary next to
//!    this example's (`target/<profile>/toygres`, or `--toygres PATH`) on one shared data
//!    directory, each with `--backup-slots` (`--slots`, default 4). Through the first replica it
//!    creates a source instance and loads `--rows` bulk rows into it. Then, `--runs` times, with
//!    one replica and with `--replicas` (default 3), alternating which goes first: `--images`
//!    (default 20) image creations posted at once over HTTP, round-robin over the running
//!    replicas, timed until none is `creating` (read every 100 ms); the images are deleted
//!    between bursts. It prints each burst, the most `pg_dump` processes seen at once under each
//!    replica, and the medians.
//! 2. **Durable overhead** ([`durable`]): in this process, on a local stack (SQLite catalog), one
//!    image and one restore through one runtime on duroxide-pg (same PostgreSQL, schema
//!    `bench_durable`) and on SQLite, `--runs` times alternating; overhead = wall − the
//!    activities' work time.
//!
//! It ends with `RATIO three_replicas_vs_one` (median burst time with `--replicas` / with one;
//! the name keeps "three" whatever `--replicas` is) and `RATIO durable_overhead_pg_vs_sqlite`
//! (median overhead per pipeline on duroxide-pg / on SQLite). Everything it starts is stopped and
//! removed at the end, after an error, or on Ctrl-C.

mod burst;
mod durable;
mod fleet;
mod procs;
// The tests' process helpers (`processes`, `ancestor_in`, `terminate`); the others are unused here.
#[allow(dead_code)]
#[path = "../../tests/support/procs.rs"]
mod proc_tree;
#[path = "../../../examples/bench/samples.rs"]
mod samples;
mod stats;

use std::path::PathBuf;
use toygres_core::Password;
use toygres_local::ConnParams;

/// The database the source's rows are in.
pub const DATABASE: &str = "bench";

/// Every error of the bench.
pub type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The command line.
pub struct Args {
    /// Bulk rows in the source instance.
    pub rows: u64,
    /// Runs of each comparison.
    pub runs: usize,
    /// Images per burst.
    pub images: usize,
    /// Replicas compared with one.
    pub replicas: usize,
    /// `--backup-slots` of each replica.
    pub slots: u32,
    /// The `toygres` binary.
    pub toygres: Option<PathBuf>,
    /// Run the replicas' comparison.
    pub burst: bool,
    /// Run the durable overhead's comparison.
    pub durable: bool,
}

const USAGE: &str = "usage: bench_replicas [--rows N (2000000)] [--runs N (3)] [--images N (20)] [--replicas N (3)] \
                     [--slots N (4)] [--toygres PATH] [--only replicas|durable]";

fn args() -> BoxResult<Args> {
    let mut args =
        Args { rows: 2_000_000, runs: 3, images: 20, replicas: 3, slots: 4, toygres: None, burst: true, durable: true };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rows" => args.rows = value()?.parse()?,
            "--runs" => args.runs = value()?.parse()?,
            "--images" => args.images = value()?.parse()?,
            "--replicas" => args.replicas = value()?.parse()?,
            "--slots" => args.slots = value()?.parse()?,
            "--toygres" => args.toygres = Some(value()?.into()),
            "--only" => match value()?.as_str() {
                "replicas" => args.durable = false,
                "durable" => args.burst = false,
                other => return Err(format!("--only {other:?}: use `replicas` or `durable`").into()),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; {USAGE}").into()),
        }
    }
    if args.runs == 0 || args.images == 0 || args.replicas < 2 || !(1..=64).contains(&args.slots) {
        return Err(format!("--runs and --images at least 1, --replicas at least 2, --slots 1 to 64; {USAGE}").into());
    }
    Ok(args)
}

/// The `toygres` binary: `--toygres`, or `toygres` in this example's profile directory
/// (`target/<profile>/examples/bench_replicas` → `target/<profile>/toygres`).
fn toygres_binary(args: &Args) -> BoxResult<PathBuf> {
    let bin = match &args.toygres {
        Some(path) => path.clone(),
        None => {
            let exe = std::env::current_exe()?;
            let profile = exe.parent().and_then(|examples| examples.parent()).ok_or("no profile directory")?;
            profile.join("toygres")
        }
    };
    if !bin.is_file() {
        return Err(format!(
            "no toygres binary at {}: build it first, in the same profile as this bench:\n  \
             cargo build --release -p toygres-server --features postgres --bin toygres\n(or pass --toygres PATH)",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

/// Creates database [`DATABASE`] in the instance at `params` and loads `rows` rows into a table of it
/// (about 235 bytes a row on disk, primary key included).
pub async fn load_rows(params: &ConnParams, password: &Password, rows: u64) -> BoxResult<()> {
    let started = std::time::Instant::now();
    let create = format!("CREATE DATABASE {DATABASE}");
    params.connect("postgres", password).await?.batch_execute(&create).await?;
    let sql = format!(
        "CREATE TABLE ledger AS SELECT g AS id, md5(g::text) AS digest, repeat(md5((g * 7)::text), 4) AS memo \
         FROM generate_series(1, {rows}) g; ALTER TABLE ledger ADD PRIMARY KEY (id)"
    );
    let client = params.connect(DATABASE, password).await?;
    client.batch_execute(&sql).await?;
    client.batch_execute("VACUUM ANALYZE ledger").await?;
    let size: i64 = client.query_one("SELECT pg_database_size(current_database())", &[]).await?.get(0);
    println!(
        "  source loaded: {rows} rows, database {:.0} MiB, in {:.1} s",
        stats::mib(size as u64),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let args = args()?;
    durable::quiet_logging();
    let bin = if args.burst { Some(toygres_binary(&args)?) } else { None };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "toygres replicas bench: {} rows, {} runs, {} images per burst, 1 vs {} replicas with {} backup slots each, \
         {cores} cores",
        args.rows, args.runs, args.images, args.replicas, args.slots
    );
    let store = fleet::Store::start().await?;
    let outcome = tokio::select! {
        outcome = bench(&args, &store, bin) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    // The bench's future is dropped by now (replicas stopped, directories removed); the store last.
    drop(store);
    outcome
}

async fn bench(args: &Args, store: &fleet::Store, bin: Option<PathBuf>) -> BoxResult<()> {
    let mut ratios = Vec::new();
    if let Some(bin) = bin {
        println!("replicas: {} concurrent images, one replica vs {}", args.images, args.replicas);
        let m = burst::run(args, store, &bin).await?;
        ratios.push(("three_replicas_vs_one", m.many.as_secs_f64() / m.one.as_secs_f64()));
    }
    if args.durable {
        println!("durable overhead per pipeline (image + restore), duroxide-pg vs SQLite");
        let m = durable::run(args, store).await?;
        ratios.push(("durable_overhead_pg_vs_sqlite", m.postgres.as_secs_f64() / m.sqlite.as_secs_f64()));
    }
    for (name, ratio) in ratios {
        println!("RATIO {name} {ratio:.2}");
    }
    Ok(())
}
