//! Test support for embedders and backends (feature `testing`):
//! mockall mocks of the three traits, and re-exports of the in-memory backends.

pub use crate::blob::MockBlobStore;
pub use crate::catalog::MockCatalogStore;
pub use crate::executor::MockClusterExecutor;
pub use crate::memory::MemoryCatalog;
pub use crate::objstore::ObjectStoreBlobs;
pub mod blob_suite;
pub mod catalog_suite;
pub mod executor_suite;
