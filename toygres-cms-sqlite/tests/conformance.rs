//! The catalog conformance suite of toygres-core against SQLite: once per property in memory, and
//! once in full on files with a pool of connections (so the races cross connections).

use std::sync::atomic::{AtomicUsize, Ordering};
use toygres_cms_sqlite::{SqliteCatalog, SqliteOptions};
use toygres_core::crypto::CatalogKey;
use toygres_core::testing::catalog_suite;

async fn in_memory() -> SqliteCatalog {
    SqliteCatalog::open_in_memory(CatalogKey::generate()).expect("open an in-memory catalog")
}

toygres_core::catalog_conformance_tests!(in_memory);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_suite_on_files_with_four_connections() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    catalog_suite::run_all(|| {
        let path = dir.path().join(format!("catalog-{}.db", n.fetch_add(1, Ordering::Relaxed)));
        async move {
            let options = SqliteOptions { connections: 4, ..SqliteOptions::default() };
            SqliteCatalog::open_with_options(path, CatalogKey::generate(), options).expect("open a file catalog")
        }
    })
    .await;
    assert!(n.load(Ordering::Relaxed) >= 14, "run_all must give every property a fresh catalog");
}
