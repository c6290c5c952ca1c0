//! The backends a server runs on. The embedded default, under the data directory: the SQLite
//! catalog (`catalog.sqlite`), images as files (`images/`), instances as local PostgreSQL
//! clusters (`local/`). With the `postgres` feature, `TOYGRES_CATALOG_URL=postgres://…` selects
//! the PostgreSQL catalog and keeps the durable history in the same database; with the `azure`
//! feature, `TOYGRES_BLOBS=azure` keeps the images in Azure Blob; with the `k8s` feature,
//! `TOYGRES_EXECUTOR=kubernetes` runs instances and jobs on Kubernetes. Images are encrypted under
//! the keys [`crate::keys`] configures (local key files under `<data-dir>/image-keys` by default).

use crate::engine::DurableStore;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use toygres_cms_sqlite::SqliteCatalog;
use toygres_core::crypto::CatalogKey;
use toygres_core::{BlobStore, CatalogStore, ClusterExecutor, Error, Result, Toygres};
use toygres_local::{LocalBlobStore, LocalExecutor};

/// Environment variable holding the catalog key (64 hex digits); without it the key is kept in
/// `<data-dir>/catalog.key` (created, mode 0600).
pub const CATALOG_KEY_ENV: &str = "TOYGRES_CATALOG_KEY";
/// Environment variable selecting the blob store: `local` (default) or `azure` (feature `azure`,
/// configured by `AZURE_STORAGE_*` as `toygres_azure::AzureBlobStoreBuilder::from_vars` reads them).
pub const BLOBS_ENV: &str = "TOYGRES_BLOBS";
/// Environment variable selecting the executor: `local` (default) or `kubernetes` (feature `k8s`).
pub const EXECUTOR_ENV: &str = "TOYGRES_EXECUTOR";
/// Environment variable selecting the PostgreSQL catalog (feature `postgres`).
pub const CATALOG_URL_ENV: &str = "TOYGRES_CATALOG_URL";

/// What the server runs on.
pub struct Backends {
    /// The library handle.
    pub toygres: Toygres,
    /// Where the durable runtime keeps its history.
    pub durable_store: DurableStore,
    /// How images are encrypted ([`crate::keys`]); the library's handle holds the keys already.
    pub keys: crate::keys::ImageKeySetup,
}

/// Opens the backends under `data_dir`; `pg_bin_dir` overrides PostgreSQL's binaries.
pub async fn open(data_dir: &Path, pg_bin_dir: Option<&Path>) -> Result<Backends> {
    // The instances run as the `postgres` OS user, which must traverse the data directory.
    toygres_local::cluster::create_traversable_dir(data_dir)?;
    let key = catalog_key(data_dir)?;
    let blobs = blob_store(data_dir).await?;
    let executor = executor(data_dir, pg_bin_dir, blobs.clone()).await?;
    let catalog = catalog(data_dir, key).await?;
    let keys = crate::keys::image_keys(data_dir).await?;
    let toygres = Toygres { keys: keys.keys.clone(), ..Toygres::new(catalog, blobs, executor) };
    Ok(Backends { toygres, durable_store: durable_store(data_dir), keys })
}

/// Local clusters under `<data-dir>/local` (PostgreSQL's binaries from `pg_bin_dir` or
/// discovered), or Kubernetes with `TOYGRES_EXECUTOR=kubernetes` (feature `k8s`), configured
/// by the JSON `toygres_k8s::K8sConfig` in the file `TOYGRES_K8S_CONFIG` (default: its defaults).
async fn executor(
    data_dir: &Path,
    pg_bin_dir: Option<&Path>,
    blobs: Arc<dyn BlobStore>,
) -> Result<Arc<dyn ClusterExecutor>> {
    match std::env::var(EXECUTOR_ENV).as_deref() {
        Err(_) | Ok("local") => {
            let mut builder = LocalExecutor::builder(data_dir.join("local"), blobs);
            if let Some(dir) = pg_bin_dir {
                builder = builder.bin_dir(dir);
            }
            Ok(Arc::new(builder.build()?))
        }
        Ok("kubernetes") => kubernetes(blobs).await,
        Ok(other) => Err(Error::InvalidRequest {
            field: EXECUTOR_ENV,
            reason: format!("{other:?} is not an executor; use `local` (the default) or `kubernetes`"),
        }),
    }
}

#[cfg(feature = "k8s")]
async fn kubernetes(blobs: Arc<dyn BlobStore>) -> Result<Arc<dyn ClusterExecutor>> {
    let config = match std::env::var_os("TOYGRES_K8S_CONFIG") {
        None => toygres_k8s::K8sConfig::default(),
        Some(file) => {
            let path = std::path::PathBuf::from(file);
            let text = std::fs::read_to_string(&path).map_err(|e| io("reading", &path, e))?;
            serde_json::from_str(&text).map_err(|e| Error::InvalidRequest {
                field: "TOYGRES_K8S_CONFIG",
                reason: format!("{} is not a K8sConfig in JSON: {e}", path.display()),
            })?
        }
    };
    Ok(Arc::new(toygres_k8s::K8sExecutor::from_env(config, blobs).await?))
}

#[cfg(not(feature = "k8s"))]
async fn kubernetes(_blobs: Arc<dyn BlobStore>) -> Result<Arc<dyn ClusterExecutor>> {
    Err(Error::InvalidRequest {
        field: EXECUTOR_ENV,
        reason: "this build has no Kubernetes executor; build with `--features k8s` or unset it".into(),
    })
}

/// Images as files under `<data-dir>/images`, or in Azure Blob with `TOYGRES_BLOBS=azure`.
async fn blob_store(data_dir: &Path) -> Result<Arc<dyn BlobStore>> {
    match std::env::var(BLOBS_ENV).as_deref() {
        Err(_) | Ok("local") => Ok(Arc::new(LocalBlobStore::open(data_dir.join("images"))?)),
        Ok("azure") => azure_blobs().await,
        Ok(other) => Err(Error::InvalidRequest {
            field: BLOBS_ENV,
            reason: format!("{other:?} is not a blob store; use `local` (the default) or `azure`"),
        }),
    }
}

#[cfg(feature = "azure")]
async fn azure_blobs() -> Result<Arc<dyn BlobStore>> {
    let store = toygres_azure::AzureBlobStore::from_env()?;
    store.ensure_container().await?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "azure"))]
async fn azure_blobs() -> Result<Arc<dyn BlobStore>> {
    Err(Error::InvalidRequest {
        field: BLOBS_ENV,
        reason: "this build has no Azure Blob store; build with `--features azure` or unset it".into(),
    })
}

/// The PostgreSQL database of the catalog when one is configured (feature `postgres`), so that
/// several servers share the work; otherwise `<data-dir>/durable.sqlite`.
fn durable_store(data_dir: &Path) -> DurableStore {
    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var(CATALOG_URL_ENV) {
        return DurableStore::Postgres(url);
    }
    DurableStore::Sqlite(data_dir.join("durable.sqlite"))
}

async fn catalog(data_dir: &Path, key: CatalogKey) -> Result<Arc<dyn CatalogStore>> {
    if let Ok(url) = std::env::var(CATALOG_URL_ENV) {
        return postgres_catalog(&url, key).await;
    }
    Ok(Arc::new(SqliteCatalog::open(data_dir.join("catalog.sqlite"), key)?))
}

#[cfg(feature = "postgres")]
async fn postgres_catalog(url: &str, key: CatalogKey) -> Result<Arc<dyn CatalogStore>> {
    Ok(Arc::new(toygres_cms_postgres::PostgresCatalog::connect_url(url, key).await?))
}

#[cfg(not(feature = "postgres"))]
async fn postgres_catalog(_url: &str, _key: CatalogKey) -> Result<Arc<dyn CatalogStore>> {
    Err(Error::InvalidRequest {
        field: CATALOG_URL_ENV,
        reason: "this build has no PostgreSQL catalog; build with `--features postgres` or unset it".into(),
    })
}

/// The catalog key: from the environment, or the data directory's key file (created once).
fn catalog_key(data_dir: &Path) -> Result<CatalogKey> {
    if std::env::var_os(CATALOG_KEY_ENV).is_some() {
        return CatalogKey::from_env(CATALOG_KEY_ENV);
    }
    let file = data_dir.join("catalog.key");
    match std::fs::read_to_string(&file) {
        Ok(hex) => return CatalogKey::from_hex(hex.trim()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("reading", &file, e)),
        Err(_) => {}
    }
    // Written aside, then linked into place: replicas starting together on one data directory
    // all end up with the one key that was linked first.
    let key = CatalogKey::generate();
    let aside = data_dir.join(format!(".catalog.key.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&aside)
        .map_err(|e| io("creating", &aside, e))?;
    std::io::Write::write_all(&mut f, key.to_hex().as_bytes()).map_err(|e| io("writing", &aside, e))?;
    f.sync_all().map_err(|e| io("writing", &aside, e))?;
    let linked = std::fs::hard_link(&aside, &file);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let hex = std::fs::read_to_string(&file).map_err(|e| io("reading", &file, e))?;
            CatalogKey::from_hex(hex.trim())
        }
        Err(e) => Err(io("creating", &file, e)),
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::backend("server", format!("{what} {}", path.display()), e)
}
