//! One real PostgreSQL shared by the tests of this binary that run at the same time (started by
//! toygres-local's harness; stopped and removed when the last test using it finishes), and a
//! fresh schema or database per test.

use std::sync::{Arc, OnceLock, Weak};
use tokio::sync::Mutex;
use toygres_cms_postgres::{PostgresCatalog, PostgresCatalogConfig};
use toygres_core::crypto::CatalogKey;
use toygres_core::Password;
use toygres_local::{LocalCluster, TempCluster};

/// A running server and its superuser password.
pub struct Server {
    pub pg: TempCluster,
    pub password: Password,
}

/// The shared server, started on first use.
pub async fn server() -> Arc<Server> {
    static SHARED: OnceLock<Mutex<Weak<Server>>> = OnceLock::new();
    let mut slot = SHARED.get_or_init(|| Mutex::new(Weak::new())).lock().await;
    if let Some(server) = slot.upgrade() {
        return server;
    }
    let password = Password::generate();
    let pg = LocalCluster::start_temporary(&password)
        .await
        .expect("start a throw-away PostgreSQL (is PostgreSQL installed? see scripts/setup.sh)");
    let server = Arc::new(Server { pg, password });
    *slot = Arc::downgrade(&server);
    server
}

/// A schema name no other test uses.
pub fn fresh_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

impl Server {
    /// A catalog configuration for `database`, schema `schema`.
    pub fn config(&self, database: &str, schema: &str) -> PostgresCatalogConfig {
        PostgresCatalogConfig::from_pg_config(self.pg.params().pg_config(database, &self.password)).schema(schema)
    }

    /// A catalog in a fresh schema of database `postgres`.
    pub async fn fresh_catalog(&self, key: CatalogKey) -> PostgresCatalog {
        PostgresCatalog::connect(self.config("postgres", &fresh_name("cms")), key).await.expect("connect")
    }

    /// A superuser client for looking at raw rows.
    pub async fn raw(&self, database: &str) -> tokio_postgres::Client {
        self.pg.cluster().connect(database, &self.password).await.expect("raw connection")
    }
}
