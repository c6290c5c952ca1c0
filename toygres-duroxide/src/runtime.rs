//! [`ToygresRuntime`] and its [`RuntimeBuilder`]: a duroxide runtime on a SQLite (or
//! duroxide-pg) store, running toygres' orchestrations and activities.

use crate::client::DurableClient;
use crate::progress::{BoardSink, ProgressBoard};
use duroxide::providers::sqlite::SqliteProvider;
use duroxide::providers::Provider;
use duroxide::runtime::registry::OrchestrationRegistryBuilder;
use duroxide::runtime::Runtime;
use duroxide::RuntimeOptions;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use toygres_core::{Error, Result, Toygres};

/// Default dispatcher poll interval: neither store long-polls, so every hop between an
/// orchestration turn and an activity costs up to one interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Hook that registers more orchestrations (e.g. a newer `create-instance` version).
type Extension = Box<dyn FnOnce(OrchestrationRegistryBuilder) -> OrchestrationRegistryBuilder + Send>;

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
    runtime: Arc<Runtime>,
    client: DurableClient,
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
        RuntimeBuilder { toygres, store: Store::InMemory, options, extensions: Vec::new() }
    }

    /// A client on the same store (cheap to clone).
    pub fn client(&self) -> DurableClient {
        self.client.clone()
    }

    /// Stops polling; running activities are redelivered to the next runtime on the store.
    pub async fn shutdown(self) {
        self.runtime.shutdown(None).await;
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

    /// Dispatcher poll interval (default [`DEFAULT_POLL_INTERVAL`]).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.options.dispatcher_min_poll_interval = interval;
        self
    }

    /// Orchestration and activity slots per process (default 2 and 4; more slots poll the
    /// store more often, and SQLite then reports more lock contention). Each running backup or
    /// restore job step holds an activity slot.
    pub fn concurrency(mut self, orchestrations: usize, activities: usize) -> Self {
        self.options.orchestration_concurrency = orchestrations.max(1);
        self.options.worker_concurrency = activities.max(1);
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
        extend: impl FnOnce(OrchestrationRegistryBuilder) -> OrchestrationRegistryBuilder + Send + 'static,
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
        let sink = Arc::new(BoardSink { board: board.clone(), inner: self.toygres.progress.clone() });
        let toygres = self.toygres.with_progress(sink);
        let env = crate::activities::Env { t: toygres.clone(), board: board.clone() };
        let activities = crate::activities::registry(&env);
        let mut orchestrations = crate::orchestrations::registry();
        for extend in self.extensions {
            orchestrations = extend(orchestrations);
        }
        let orchestrations =
            orchestrations.build_result().map_err(|e| Error::InvalidRequest { field: "orchestrations", reason: e })?;
        let mut options = self.options;
        // duroxide panics unless sessions outlive an activity lock's renewal interval.
        let renewal = options.worker_lock_timeout.saturating_sub(options.worker_lock_renewal_buffer);
        options.session_idle_timeout = options.session_idle_timeout.max(renewal + Duration::from_secs(1));
        let runtime = Runtime::start_with_options(store.clone(), activities, orchestrations, options).await;
        let client = DurableClient::new(duroxide::Client::new(store), toygres, board);
        Ok(ToygresRuntime { runtime, client })
    }
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
