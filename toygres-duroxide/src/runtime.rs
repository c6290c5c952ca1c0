//! [`ToygresRuntime`] and its [`RuntimeBuilder`]: duroxide runtimes on a SQLite (or duroxide-pg)
//! store, running toygres' orchestrations and activities. A process runs three: one for the
//! orchestrations and the short steps, and one per job queue ([`crate::names::queue`]) whose
//! worker slots are its capacity for backup jobs or restore jobs, so that neither kind waits for
//! slots the other holds. Several processes on one duroxide-pg store share the work.

use crate::activities::sweep::SweepSettings;
use crate::client::DurableClient;
use crate::names::{queue, SWEEPER, SWEEPER_ID, SWEEPER_VERSION};
use crate::orchestrations::SweeperInput;
use crate::progress::{BoardSink, ProgressBoard};
use duroxide::providers::sqlite::SqliteProvider;
use duroxide::providers::Provider;
use duroxide::runtime::registry::OrchestrationRegistryBuilder;
use duroxide::runtime::Runtime;
use duroxide::{OrchestrationStatus, RuntimeOptions, TagFilter};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use toygres_core::{Error, Result, Toygres};

/// Default dispatcher poll interval: neither store long-polls, so every hop between an
/// orchestration turn and an activity costs up to one interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The least time a job slot waits between two polls of an empty queue: a job runs for seconds
/// to hours, so starting it up to this much later costs nothing, while every idle slot's poll is a
/// query on the store (more so with several replicas on one database).
pub const JOB_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Default time between two sweeps ([`RuntimeBuilder::sweeper`]).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(15);

/// How often a process checks that the sweeper runs (and starts it again if it ended).
const SWEEPER_WATCH: Duration = Duration::from_secs(60);

/// Hook that registers more orchestrations (e.g. a newer `create-instance` version).
type Extension = Box<dyn Fn(OrchestrationRegistryBuilder) -> OrchestrationRegistryBuilder + Send + Sync>;

enum Store {
    Sqlite(PathBuf),
    InMemory,
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        schema: String,
    },
}

/// Configures and starts a [`ToygresRuntime`]. Get one with [`ToygresRuntime::builder`].
pub struct RuntimeBuilder {
    toygres: Toygres,
    store: Store,
    options: RuntimeOptions,
    extensions: Vec<Extension>,
    backups: usize,
    restores: usize,
    sweep: Option<(Duration, SweepSettings)>,
}

/// A started duroxide runtime running toygres' orchestrations and activities.
///
/// ```no_run
/// # async fn demo(toygres: toygres_core::Toygres) -> toygres_core::Result<()> {
/// let runtime = toygres_duroxide::ToygresRuntime::builder(toygres).sqlite("/var/lib/toygres/durable.db").start().await?;
/// let client = runtime.client();
/// # let _ = client; runtime.shutdown().await; Ok(()) }
/// ```
pub struct ToygresRuntime {
    runtimes: Vec<Arc<Runtime>>,
    client: DurableClient,
    watch: Option<tokio::task::AbortHandle>,
}

impl ToygresRuntime {
    /// A builder over `toygres`' backends (in-memory store until one is chosen).
    pub fn builder(toygres: Toygres) -> RuntimeBuilder {
        let options = RuntimeOptions {
            dispatcher_min_poll_interval: DEFAULT_POLL_INTERVAL,
            orchestration_concurrency: 2,
            worker_concurrency: 4,
            ..Default::default()
        };
        let sweep = Some((DEFAULT_SWEEP_INTERVAL, SweepSettings::default()));
        RuntimeBuilder {
            toygres,
            store: Store::InMemory,
            options,
            extensions: Vec::new(),
            backups: 2,
            restores: 2,
            sweep,
        }
    }

    /// A client on the same store (cheap to clone).
    pub fn client(&self) -> DurableClient {
        self.client.clone()
    }

    /// Stops polling; running activities are redelivered to the next runtime on the store.
    pub async fn shutdown(self) {
        if let Some(watch) = self.watch {
            watch.abort();
        }
        for runtime in self.runtimes {
            runtime.shutdown(None).await;
        }
    }
}

impl RuntimeBuilder {
    /// SQLite file store (created if missing). The default store kind.
    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Store::Sqlite(path.into());
        self
    }

    /// In-memory SQLite store (tests, examples).
    pub fn in_memory(mut self) -> Self {
        self.store = Store::InMemory;
        self
    }

    /// duroxide-pg store for several control-plane processes on one database, in `schema`.
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, url: impl Into<String>, schema: impl Into<String>) -> Self {
        self.store = Store::Postgres { url: url.into(), schema: schema.into() };
        self
    }

    /// Dispatcher poll interval (default [`DEFAULT_POLL_INTERVAL`]) of the orchestrations and
    /// short steps; job slots poll at least [`JOB_POLL_INTERVAL`] apart.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.options.dispatcher_min_poll_interval = interval;
        self
    }

    /// Orchestration and short-step slots per process (default 2 and 4; more slots poll the
    /// store more often, and SQLite then reports more lock contention). Jobs have their own
    /// slots ([`RuntimeBuilder::job_capacity`]).
    pub fn concurrency(mut self, orchestrations: usize, activities: usize) -> Self {
        self.options.orchestration_concurrency = orchestrations.max(1);
        self.options.worker_concurrency = activities.max(1);
        self
    }

    /// How many backup jobs and how many restore jobs this process runs at once (default 2
    /// and 2; at least 1 each). Separate slots: a burst of scheduled backups never holds up a
    /// user's restore. A job waiting for a slot waits in the store, where any process's free
    /// slot of its kind takes it.
    pub fn job_capacity(mut self, backups: usize, restores: usize) -> Self {
        self.backups = backups.max(1);
        self.restores = restores.max(1);
        self
    }

    /// Runs the sweeper every `interval` with `settings` (the default: every
    /// [`DEFAULT_SWEEP_INTERVAL`], [`SweepSettings::default`]).
    pub fn sweeper(mut self, interval: Duration, settings: SweepSettings) -> Self {
        self.sweep = Some((interval, settings));
        self
    }

    /// Neither starts the sweeper nor runs its steps in this process (tests of one pipeline).
    pub fn without_sweeper(mut self) -> Self {
        self.sweep = None;
        self
    }

    /// How long a crashed process's orchestration turn and activity stay locked before another
    /// runtime takes them over (duroxide's defaults: 5 s and 30 s; live locks are renewed).
    pub fn lock_timeouts(mut self, orchestration: Duration, activity: Duration) -> Self {
        self.options.orchestrator_lock_timeout = orchestration;
        self.options.worker_lock_timeout = activity;
        self
    }

    /// Registers more orchestrations, e.g. a newer version of `create-instance` during a rolling
    /// upgrade (instances keep the version they started with).
    pub fn orchestrations(
        mut self,
        extend: impl Fn(OrchestrationRegistryBuilder) -> OrchestrationRegistryBuilder + Send + Sync + 'static,
    ) -> Self {
        self.extensions.push(Box::new(extend));
        self
    }

    /// Opens the store and returns a client without starting a runtime: for a process that
    /// only starts and watches operations while other processes run them. Its statuses carry
    /// steps but no byte counts (those live in the process that runs the job).
    pub async fn connect(self) -> Result<DurableClient> {
        let store = open(&self.store).await?;
        Ok(DurableClient::new(duroxide::Client::new(store), self.toygres, Arc::default()))
    }

    /// Opens the store and starts polling.
    pub async fn start(self) -> Result<ToygresRuntime> {
        let store = open(&self.store).await?;
        let board = Arc::new(ProgressBoard::default());
        let sink = Arc::new(BoardSink::new(board.clone(), self.toygres.progress.clone(), self.toygres.catalog.clone()));
        let toygres = self.toygres.with_progress(sink);
        let mut options = self.options;
        // duroxide panics unless sessions outlive an activity lock's renewal interval.
        let renewal = options.worker_lock_timeout.saturating_sub(options.worker_lock_renewal_buffer);
        options.session_idle_timeout = options.session_idle_timeout.max(renewal + Duration::from_secs(1));
        // A step whose lease was lost holds its result back past the lease; duroxide must not
        // abort it (and acknowledge the step without a result) before then.
        let lease = options.worker_lock_timeout;
        options.activity_cancellation_grace_period =
            options.activity_cancellation_grace_period.max(lease + 2 * crate::activities::LEASE_MARGIN);
        let sweep = self.sweep.map(|(_, settings)| settings).unwrap_or_default();
        let env = crate::activities::Env { t: toygres.clone(), board: board.clone(), sweep, lease };
        let orchestrations = || {
            let mut orchestrations = crate::orchestrations::registry();
            for extend in &self.extensions {
                orchestrations = extend(orchestrations);
            }
            orchestrations.build_result().map_err(|e| Error::InvalidRequest { field: "orchestrations", reason: e })
        };
        let mut runtimes = Vec::new();
        let main = RuntimeOptions { worker_tag_filter: TagFilter::default_only(), ..options.clone() };
        let activities = crate::activities::registry(&env);
        runtimes.push(Runtime::start_with_options(store.clone(), activities, orchestrations()?, main).await);
        for (tag, slots) in [(queue::BACKUPS, self.backups), (queue::RESTORES, self.restores)] {
            let jobs = RuntimeOptions {
                dispatcher_min_poll_interval: options.dispatcher_min_poll_interval.max(JOB_POLL_INTERVAL),
                orchestration_concurrency: 0,
                worker_concurrency: slots,
                worker_tag_filter: TagFilter::tags([tag]),
                ..options.clone()
            };
            let activities = crate::activities::registry(&env);
            runtimes.push(Runtime::start_with_options(store.clone(), activities, orchestrations()?, jobs).await);
        }
        let client = DurableClient::new(duroxide::Client::new(store), toygres, board);
        let watch = match self.sweep {
            Some((interval, _)) => {
                let input = SweeperInput { interval_ms: interval.as_millis() as u64 };
                ensure_sweeper(client.duroxide(), input).await?;
                let duroxide = client.duroxide().clone();
                let task = tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(SWEEPER_WATCH).await;
                        if let Err(e) = ensure_sweeper(&duroxide, input).await {
                            tracing::warn!(error = %e, "checking the sweeper");
                        }
                    }
                });
                Some(task.abort_handle())
            }
            None => None,
        };
        Ok(ToygresRuntime { runtimes, client, watch })
    }
}

/// Starts the sweeper unless it runs: a duplicate start is a no-op, and one that ended (a poisoned
/// turn) is deleted and started again.
async fn ensure_sweeper(client: &duroxide::Client, input: SweeperInput) -> Result<()> {
    let fail = |what: &'static str| {
        move |e: duroxide::ClientError| Error::backend_msg("durable store", format!("{what}: {e}"))
    };
    match client.get_orchestration_status(SWEEPER_ID).await.map_err(fail("reading the sweeper's status"))? {
        OrchestrationStatus::Running { .. } => return Ok(()),
        OrchestrationStatus::NotFound => {}
        ended => {
            tracing::warn!(status = ?ended, "the sweeper ended; starting it again");
            client.delete_instance(SWEEPER_ID, true).await.map_err(fail("deleting the ended sweeper"))?;
        }
    }
    let start = client.start_orchestration_versioned_typed(SWEEPER_ID, SWEEPER, SWEEPER_VERSION, input);
    start.await.map_err(fail("starting the sweeper"))
}

fn store_error(what: String) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error {
    move |e| Error::backend("durable store", what, e)
}

async fn open(store: &Store) -> Result<Arc<dyn Provider>> {
    Ok(match store {
        Store::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| store_error(format!("creating {}", dir.display()))(e.into()))?;
            }
            let url = format!("sqlite:{}?mode=rwc", path.display());
            let what = format!("opening the SQLite store {}; check the path and permissions", path.display());
            Arc::new(SqliteProvider::new(&url, None).await.map_err(|e| store_error(what)(e.into()))?)
        }
        Store::InMemory => Arc::new(
            SqliteProvider::new_in_memory()
                .await
                .map_err(|e| store_error("opening an in-memory store".into())(e.into()))?,
        ),
        #[cfg(feature = "postgres")]
        Store::Postgres { url, schema } => {
            let what = format!("opening the duroxide-pg store (schema {schema}); check the URL and rights");
            let provider = duroxide_pg::PostgresProvider::new_with_schema(url, Some(schema))
                .await
                .map_err(|e| store_error(what)(e.into()))?;
            Arc::new(provider)
        }
    })
}
