//! The durable layer's overhead per pipeline on duroxide-pg against SQLite, in this process: one
//! image and one restore of it, run one after the other through a single [`ToygresRuntime`]
//! configured as `toygres serve` configures it by default (poll 20 ms, 2 backup and 2 restore
//! slots), without the sweeper. Overhead = wall time − the time the runtime's activities spent
//! working ([`DurableClient::work_time`]): polling, history writes, orchestration turns and the
//! hops between them. The catalog is SQLite on both sides, so only the durable store differs.

use crate::fleet::{DataDir, Store};
use crate::stats::{list, list_ms, load_average, median, ms};
use crate::{load_rows, Args, BoxResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::{CreateImageRequest, CreateInstanceRequest, InstanceId, OperationId, Password, Subject, Toygres};
use toygres_duroxide::{DurableClient, OperationState, ToygresRuntime};
use toygres_local::{LocalBlobStore, LocalExecutor};
use toygres_server::replica::ReplicaArgs;

/// How long one image or one restore may take before the bench gives up.
const TIMEOUT: Duration = Duration::from_secs(1800);

/// The duroxide-pg schema of this comparison (the replicas use `toygres_durable`).
const SCHEMA: &str = "bench_durable";

/// A durable store under comparison.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "duroxide-pg",
        }
    }
}

/// One pipeline's wall and work times, and the dispatchers' back-offs during it.
#[derive(Default)]
struct Pipeline {
    image: (Duration, Duration),
    restore: (Duration, Duration),
    backoffs: u64,
}

impl Pipeline {
    fn image_overhead(&self) -> Duration {
        self.image.0.saturating_sub(self.image.1)
    }

    fn restore_overhead(&self) -> Duration {
        self.restore.0.saturating_sub(self.restore.1)
    }

    fn overhead(&self) -> Duration {
        self.image_overhead() + self.restore_overhead()
    }
}

/// The medians of the overhead per pipeline (image + restore).
pub struct Medians {
    /// On SQLite.
    pub sqlite: Duration,
    /// On duroxide-pg.
    pub postgres: Duration,
}

/// Runs the comparison; its instances are stopped and its directory removed when it returns.
pub async fn run(args: &Args, store: &Store) -> BoxResult<Medians> {
    let dir = DataDir::new("tgd-")?;
    let data = dir.data();
    toygres_local::cluster::create_traversable_dir(&data)?;
    let blobs = Arc::new(LocalBlobStore::open(data.join("images"))?);
    let executor = LocalExecutor::builder(data.join("local"), blobs.clone()).build()?;
    let catalog = Arc::new(SqliteCatalog::open(data.join("catalog.sqlite"), CatalogKey::generate())?);
    let keys = Arc::new(toygres_core::envelope::LocalKeys::open_or_create(data.join("image-keys"))?);
    let t = Toygres::new(catalog, blobs, Arc::new(executor.clone())).with_image_keys(keys);
    let password = Password::generate();
    let source = executor.provision_source(&t, "durable-source", &password).await?;
    load_rows(&executor.cluster(&source.spec())?.params(), &password, args.rows).await?;

    let mut samples: Vec<(Kind, Pipeline)> = Vec::new();
    for run_no in 1..=args.runs {
        // Odd runs SQLite first, even runs duroxide-pg first.
        let order = match run_no % 2 {
            1 => [Kind::Sqlite, Kind::Postgres],
            _ => [Kind::Postgres, Kind::Sqlite],
        };
        let mut line = format!("  run {run_no} (load {:.1}):", load_average());
        for kind in order {
            let builder = ReplicaArgs::default().configure(ToygresRuntime::builder(t.clone())).without_sweeper();
            let builder = match kind {
                Kind::Sqlite => builder.sqlite(dir.root().join("durable.sqlite")),
                Kind::Postgres => builder.postgres(store.url(), SCHEMA),
            };
            let runtime = builder.start().await?;
            let name = format!("{}-{run_no}", if kind == Kind::Sqlite { "sqlite" } else { "pg" });
            let result = pipeline(&runtime.client(), &t, source.id, &name).await;
            runtime.shutdown().await;
            let p = result?;
            line += &format!(
                " {} image {:.2} s (overhead {:.0} ms), restore {:.2} s (overhead {:.0} ms), {} back-offs;",
                kind.name(),
                p.image.0.as_secs_f64(),
                ms(p.image_overhead()),
                p.restore.0.as_secs_f64(),
                ms(p.restore_overhead()),
                p.backoffs
            );
            samples.push((kind, p));
        }
        println!("{}", line.trim_end_matches(';'));
    }

    let of = |kind: Kind, f: fn(&Pipeline) -> Duration| -> Vec<Duration> {
        samples.iter().filter(|(k, _)| *k == kind).map(|(_, p)| f(p)).collect()
    };
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let (walls, overheads) = (of(kind, |p| p.image.0 + p.restore.0), of(kind, Pipeline::overhead));
        println!(
            "  {:<11} overhead per pipeline: median {:.0} ms [{}] (image {:.0} ms [{}], restore {:.0} ms [{}]); \
             wall median {:.2} s [{}]; {} back-offs in all",
            kind.name(),
            ms(median(&overheads)),
            list_ms(&overheads),
            ms(median(&of(kind, Pipeline::image_overhead))),
            list_ms(&of(kind, Pipeline::image_overhead)),
            ms(median(&of(kind, Pipeline::restore_overhead))),
            list_ms(&of(kind, Pipeline::restore_overhead)),
            median(&walls).as_secs_f64(),
            list(&walls),
            samples.iter().filter(|(k, _)| *k == kind).map(|(_, p)| p.backoffs).sum::<u64>()
        );
    }
    let medians = Medians {
        sqlite: median(&of(Kind::Sqlite, Pipeline::overhead)),
        postgres: median(&of(Kind::Postgres, Pipeline::overhead)),
    };
    drop(dir);
    Ok(medians)
}

/// One image of `source` and one restore of it, through `client`'s runtime; both are deleted
/// afterwards (not timed).
async fn pipeline(client: &DurableClient, t: &Toygres, source: InstanceId, name: &str) -> BoxResult<Pipeline> {
    let mut p = Pipeline::default();
    let backoffs = BACKOFFS.load(Ordering::Relaxed);
    let started = Instant::now();
    let image =
        client.create_image(OperationId::new(), CreateImageRequest::new(format!("{name}-image"), source)).await?;
    finished(client, Subject::Image(image.id)).await?;
    p.image = (started.elapsed(), client.work_time(Subject::Image(image.id)));

    let started = Instant::now();
    let request = CreateInstanceRequest::restore(format!("{name}-copy"), image.id);
    let instance = client.create_instance(OperationId::new(), request).await?;
    finished(client, Subject::Instance(instance.id)).await?;
    p.restore = (started.elapsed(), client.work_time(Subject::Instance(instance.id)));
    p.backoffs = BACKOFFS.load(Ordering::Relaxed) - backoffs;

    t.delete_instance(instance.id).await?;
    t.delete_image(image.id).await?;
    Ok(p)
}

/// Waits for `subject`'s orchestration; an error unless it completed.
async fn finished(client: &DurableClient, subject: Subject) -> BoxResult<()> {
    let status = client.wait(subject, TIMEOUT).await?;
    match status.state {
        OperationState::Completed => Ok(()),
        state => Err(format!("{subject:?} ended {state:?}: {}", status.error.unwrap_or_default()).into()),
    }
}

/// Back-offs of the durable runtime's dispatchers: a fetch the store refused (SQLite's "database
/// is locked") and retried after a pause, counted from duroxide's warnings.
static BACKOFFS: AtomicU64 = AtomicU64::new(0);

struct CountBackoffs;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountBackoffs {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() == tracing::Level::WARN && meta.target().starts_with("duroxide::runtime::dispatchers") {
            BACKOFFS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// This process's logging: errors to stderr; duroxide's back-off warnings counted, not printed
/// (duroxide would otherwise install its own subscriber, printing every warning).
pub fn quiet_logging() {
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::prelude::*;
    let errors = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(LevelFilter::ERROR);
    let _ = tracing_subscriber::registry().with(CountBackoffs.with_filter(LevelFilter::WARN)).with(errors).try_init();
}
