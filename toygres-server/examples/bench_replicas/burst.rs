//! One replica against several: `--images` image creations posted at once over HTTP, spread
//! round-robin over the running replicas, timed from the first post until none is `creating`.

use crate::fleet::{Api, Fleet, Store};
use crate::procs::{self, Peaks};
use crate::stats::{list, load_average, median, mib};
use crate::{load_rows, Args, BoxResult, DATABASE};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use toygres_core::Password;
use toygres_local::ConnParams;

/// How long one image, or one burst, may take before the bench gives up.
const TIMEOUT: Duration = Duration::from_secs(1800);

/// How often a burst's progress is read (the figures' resolution).
const POLL: Duration = Duration::from_millis(100);

/// How long the cores' idle load is read before each burst.
const IDLE: Duration = Duration::from_secs(3);

/// The medians of the burst with one replica and with `--replicas`.
pub struct Medians {
    /// One replica.
    pub one: Duration,
    /// `--replicas` replicas.
    pub many: Duration,
}

/// Runs the comparison; the fleet is stopped and removed when it returns, also on error.
pub async fn run(args: &Args, store: &Store, bin: &Path) -> BoxResult<Medians> {
    let mut fleet = Fleet::new(bin, store, args.slots)?;
    let measured = measure(args, &mut fleet).await;
    if measured.is_err() {
        eprintln!("{}", fleet.log_tails());
    }
    measured
}

async fn measure(args: &Args, fleet: &mut Fleet) -> BoxResult<Medians> {
    fleet.scale_to(1)?;
    let api = fleet.api(0);
    let source = source(&api, args.rows).await?;

    // One image alone, for scale.
    let started = Instant::now();
    let id = api.create("/api/images", json!({ "name": "alone", "instance_id": source })).await?;
    let image = api.settle(&format!("/api/images/{id}"), "creating", TIMEOUT).await?;
    let alone = started.elapsed();
    if image["state"] != "ready" {
        return Err(format!("the first image failed: {image}").into());
    }
    let size = image["size_bytes"].as_u64().unwrap_or(0);
    api.delete(&format!("/api/images/{id}")).await?;
    println!(
        "  one image alone (one replica, nothing else running): {:.2} s, {:.1} MiB stored",
        alone.as_secs_f64(),
        mib(size)
    );

    let (n, images) = (args.replicas, args.images);
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for run_no in 1..=args.runs {
        // Odd runs one replica first, even runs the fleet first.
        let order = if run_no % 2 == 1 { [1, n] } else { [n, 1] };
        let mut line = format!("  run {run_no} (load {:.1}):", load_average());
        for replicas in order {
            fleet.scale_to(replicas)?;
            // What the idle replicas cost (polling the store), before the burst.
            let ticks = procs::machine_ticks();
            tokio::time::sleep(IDLE).await;
            let idle = procs::busy_percent(ticks, procs::machine_ticks());
            let tag = format!("burst-{run_no}-{replicas}");
            let mut burst = burst(fleet, replicas, &source, &tag, images).await?;
            burst.idle = idle;
            match replicas {
                1 => one.push(burst.time),
                _ => many.push(burst.time),
            }
            line += &format!(" {},", burst.show(replicas));
            let api = fleet.api(0);
            for id in burst.ids {
                api.delete(&format!("/api/images/{id}")).await?;
            }
        }
        println!("{}", line.trim_end_matches(','));
    }
    let medians = Medians { one: median(&one), many: median(&many) };
    println!(
        "  {images} images, 1 replica: median {:.2} s [{}]; {n} replicas: median {:.2} s [{}] → ratio {:.2}",
        medians.one.as_secs_f64(),
        list(&one),
        medians.many.as_secs_f64(),
        list(&many),
        medians.many.as_secs_f64() / medians.one.as_secs_f64()
    );
    let per_image = |t: Duration| t.as_secs_f64() / images as f64;
    println!(
        "  per image: 1 replica {:.2} s, {n} replicas {:.2} s (one image alone {:.2} s)",
        per_image(medians.one),
        per_image(medians.many),
        alone.as_secs_f64()
    );
    Ok(medians)
}

/// A running source instance created through the API, with `rows` bulk rows; its id.
async fn source(api: &Api, rows: u64) -> BoxResult<String> {
    let password = Password::generate();
    let body = json!({ "name": "bench-source", "password": password.expose() });
    let id = api.create("/api/instances", body).await?;
    let record = api.settle(&format!("/api/instances/{id}"), "provisioning", TIMEOUT).await?;
    let c = &record["connection"];
    let (Some(host), Some(port), Some(user)) = (c["host"].as_str(), c["port"].as_u64(), c["user"].as_str()) else {
        return Err(format!("the source instance is not running: {record}").into());
    };
    let params = ConnParams { host: host.to_string(), port: port as u16, user: user.to_string() };
    load_rows(&params, &password, rows).await?;
    Ok(id)
}

/// One burst: its time, the most data dumps seen at once under each replica, the CPU seconds each
/// replica (and its `pg_dump` children) used, how busy the cores were during it and, idle, just
/// before it, and the images' ids.
struct Burst {
    time: Duration,
    peaks: Peaks,
    cpu: Vec<f64>,
    busy: f64,
    idle: f64,
    ids: Vec<String>,
}

impl Burst {
    fn show(&self, replicas: usize) -> String {
        let cpu = self.cpu.iter().map(|c| format!("{c:.1}")).collect::<Vec<_>>().join("+");
        format!(
            "{replicas} replica(s) {:.2} s (jobs at once {}, replica CPU {cpu} s, cores {:.0} % busy; idle before: {:.1} %)",
            self.time.as_secs_f64(),
            self.peaks.show(),
            self.busy,
            self.idle
        )
    }
}

/// Posts `images` creations of `source` at once, round-robin over the first `replicas`
/// replicas, and waits until none is `creating`; every image must be `ready`.
async fn burst(fleet: &Fleet, replicas: usize, source: &str, tag: &str, images: usize) -> BoxResult<Burst> {
    let apis: Vec<Api> = (0..replicas).map(|i| fleet.api(i)).collect();
    let pids = fleet.pids();
    let cpu_before: Vec<f64> = pids.iter().map(|p| procs::cpu_seconds(*p)).collect();
    let ticks = procs::machine_ticks();
    let started = Instant::now();
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..images {
        let api = apis[i % replicas].clone();
        let body = json!({ "name": format!("{tag}-{i}"), "instance_id": source });
        posts.spawn(async move { api.create("/api/images", body).await });
    }
    let mut ids = Vec::new();
    while let Some(posted) = posts.join_next().await {
        ids.push(posted??);
    }
    let mut peaks = Peaks::default();
    loop {
        peaks.sample(DATABASE, &pids);
        let page = apis[0].get("/api/images?state=creating&limit=1").await?;
        if page["items"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        if started.elapsed() > TIMEOUT {
            return Err(format!("{tag}: images still creating after {TIMEOUT:?}").into());
        }
        tokio::time::sleep(POLL).await;
    }
    let time = started.elapsed();
    let busy = procs::busy_percent(ticks, procs::machine_ticks());
    let cpu = pids.iter().zip(cpu_before).map(|(p, before)| procs::cpu_seconds(*p) - before).collect();
    for id in &ids {
        let image = apis[0].get(&format!("/api/images/{id}")).await?;
        if image["state"] != "ready" {
            return Err(format!("{tag}: image {id} is {}: {}", image["state"], image["failure_reason"]).into());
        }
    }
    Ok(Burst { time, peaks, cpu, busy, idle: 0.0, ids })
}
