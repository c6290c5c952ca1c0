//! The conformance suite every [`CatalogStore`] runs: one definition of "behaves like a catalog".
//!
//! Each property is a public async function taking a **fresh, empty** catalog in an [`Arc`]
//! (the racing properties spawn tasks on it; run them on a multi-thread runtime so that the races
//! are real). [`run_all`] runs every property, each on a new catalog from your constructor, and
//! [`catalog_conformance_tests!`](crate::catalog_conformance_tests) expands to one `#[tokio::test]`
//! per property so that a failure names the property that broke.
//!
//! What the suite holds a catalog to:
//! - every transition the lifecycle allows succeeds and applies its fields; every other one is
//!   refused with [`Error::InvalidTransition`] and the record is unchanged;
//! - a lost compare-and-set is [`Error::StateConflict`] (with the actual state); unknown ids are
//!   [`Error::ImageNotFound`] / [`Error::InstanceNotFound`];
//! - `reserve_image` and `create_instance` are idempotent on the operation id and bound to the
//!   request digest it was first used with ([`Error::OperationReused`]); a live instance name
//!   belongs to one operation ([`Error::NameTaken`]);
//! - of N tasks racing to move one image out of `creating`, exactly one wins;
//! - schedules: `create_schedule` is idempotent and bound to its request like images, live names
//!   are unique ([`Error::ScheduleNameTaken`]), `advance_schedule` is a compare-and-set with one
//!   winner among racers;
//! - byte progress is kept per subject, replaced, cleared, and removed with its record;
//! - `get`/`list` return exactly what was written, oldest first, filtered by source, state, name
//!   and labels, in pages of `limit` after a `page_token`; labels and image metadata round-trip;
//!   deleted records are gone; passwords round-trip and are unavailable when they should be;
//! - clone images, the clone image an exported physical image came from, and clone schedules
//!   are recorded like any other;
//! - a point-in-time restore's recovery plan is recorded with its instance, and an instance's
//!   protection is recorded, replaced and forgotten in any state, deleted included.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! use toygres_core::{testing::catalog_suite, MemoryCatalog};
//! catalog_suite::run_all(|| async { MemoryCatalog::new() }).await;
//! # }
//! ```

/// Panics unless `result` is the error `pattern` describes (defined before the submodules so
/// that they can use it).
macro_rules! expect_err {
    ($result:expr, $pattern:pat, $what:expr) => {
        match $result {
            Err($pattern) => {}
            Err(other) => panic!("{}: expected {}, got error {other:?}", $what, stringify!($pattern)),
            Ok(value) => panic!("{}: expected {}, got Ok({value:?})", $what, stringify!($pattern)),
        }
    };
}

mod clones;
mod images;
mod instances;
mod keys;
mod listing;
mod progress;
mod protection;
mod requests;
mod schedules;

pub use clones::clone_images_exports_and_schedules_round_trip;
pub use images::{
    deleted_images_are_gone, image_compare_and_set_conflicts, image_source_password_round_trips, image_transitions,
    list_and_get_images, racing_image_updates, reserve_image_is_idempotent,
};
pub use instances::{
    create_instance_is_idempotent_and_names_are_unique, deleted_instances_are_gone, instance_compare_and_set_conflicts,
    instance_password_round_trips, instance_transitions, list_and_get_instances, racing_instance_names,
};
pub use keys::{image_keys_are_recorded_and_rewrapped, racing_rewraps_have_one_winner};
pub use listing::{image_labels_and_metadata, images_page_in_order, instance_labels_and_filters, sample_metadata};
pub use progress::{progress_goes_with_its_record, progress_is_recorded_replaced_and_cleared};
pub use protection::recovery_plans_and_protection_round_trip;
pub use requests::{an_image_operation_is_bound_to_its_request, an_instance_operation_is_bound_to_its_request};
pub use schedules::{
    advance_schedule_is_a_compare_and_set, create_schedule_is_idempotent_and_names_are_unique, new_schedule,
    racing_schedule_advances_have_one_winner, schedules_read_list_and_delete,
};

use crate::catalog::CatalogStore;
use crate::error::Error;
use crate::ids::InstanceId;
use crate::image::{ImageFormat, ImageType, ImageUpdate, NewImage};
use crate::instance::{ConnectionInfo, InstanceUpdate, NewInstance};
use crate::secret::Password;
use crate::state::InstanceState;
use std::future::Future;
use std::sync::Arc;

/// How many tasks the racing properties start.
pub const RACERS: usize = 16;

/// Runs every property of the suite, each on a fresh catalog made by `make`.
///
/// Panics (with the property's name and what went wrong) on the first property that fails.
pub async fn run_all<C, F, Fut>(mut make: F)
where
    C: CatalogStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = C>,
{
    macro_rules! run {
        ($($property:ident),+ $(,)?) => {$(
            // Shown by the test harness when a property fails, so the failure names it.
            eprintln!("catalog conformance: {}", stringify!($property));
            $property(Arc::new(make().await)).await;
        )+};
    }
    run!(
        image_transitions,
        image_compare_and_set_conflicts,
        reserve_image_is_idempotent,
        racing_image_updates,
        list_and_get_images,
        deleted_images_are_gone,
        image_source_password_round_trips,
        instance_transitions,
        instance_compare_and_set_conflicts,
        create_instance_is_idempotent_and_names_are_unique,
        racing_instance_names,
        list_and_get_instances,
        deleted_instances_are_gone,
        instance_password_round_trips,
        image_labels_and_metadata,
        images_page_in_order,
        instance_labels_and_filters,
        an_image_operation_is_bound_to_its_request,
        an_instance_operation_is_bound_to_its_request,
        image_keys_are_recorded_and_rewrapped,
        racing_rewraps_have_one_winner,
        create_schedule_is_idempotent_and_names_are_unique,
        schedules_read_list_and_delete,
        advance_schedule_is_a_compare_and_set,
        racing_schedule_advances_have_one_winner,
        progress_is_recorded_replaced_and_cleared,
        progress_goes_with_its_record,
        clone_images_exports_and_schedules_round_trip,
        recovery_plans_and_protection_round_trip,
    );
}

/// Expands to one `#[tokio::test]` per conformance property, each on a fresh catalog from
/// `$make().await` (an async fn or closure returning the catalog). The calling crate needs
/// `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency.
///
/// ```no_run
/// async fn fresh() -> toygres_core::MemoryCatalog {
///     toygres_core::MemoryCatalog::new()
/// }
/// toygres_core::catalog_conformance_tests!(fresh);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! catalog_conformance_tests {
    ($make:expr) => {
        $crate::catalog_conformance_tests!(@each $make;
            image_transitions, image_compare_and_set_conflicts, reserve_image_is_idempotent,
            racing_image_updates, list_and_get_images, deleted_images_are_gone,
            image_source_password_round_trips, instance_transitions, instance_compare_and_set_conflicts,
            create_instance_is_idempotent_and_names_are_unique, racing_instance_names,
            list_and_get_instances, deleted_instances_are_gone, instance_password_round_trips,
            image_labels_and_metadata, images_page_in_order, instance_labels_and_filters,
            an_image_operation_is_bound_to_its_request, an_instance_operation_is_bound_to_its_request,
            image_keys_are_recorded_and_rewrapped, racing_rewraps_have_one_winner,
            create_schedule_is_idempotent_and_names_are_unique, schedules_read_list_and_delete,
            advance_schedule_is_a_compare_and_set, racing_schedule_advances_have_one_winner,
            progress_is_recorded_replaced_and_cleared, progress_goes_with_its_record,
            clone_images_exports_and_schedules_round_trip, recovery_plans_and_protection_round_trip);
    };
    (@each $make:expr; $($property:ident),+) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $property() {
            let catalog = ($make)().await;
            $crate::testing::catalog_suite::$property(::std::sync::Arc::new(catalog)).await;
        }
    )+};
}

/// A new image of `source` named `name`.
pub fn new_image(source: InstanceId, name: &str) -> NewImage {
    NewImage::new(name, source).with_description(format!("suite image {name}")).with_format(ImageFormat::Physical)
}

/// The `creating → ready` update the suite uses, sealing `password`.
pub fn ready_update(password: &str) -> ImageUpdate {
    ImageUpdate::Ready {
        size_bytes: 123_456_789_012,
        checksum: "sha256:00ff".to_string(),
        pg_version: "15.18".to_string(),
        image_type: ImageType::PgDurable,
        source_password: Password::new(password),
        metadata: None,
    }
}

/// A new instance named `name`, starting in `state`, with superuser password `password`.
pub fn new_instance(name: &str, state: InstanceState, password: &str) -> NewInstance {
    NewInstance {
        name: name.to_string(),
        dns_label: Some(format!("{name}-dns")),
        image_type: ImageType::PgDurable,
        pg_version: Some("15.18".to_string()),
        source_image_id: Some(crate::ids::ImageId::new()),
        password: Password::new(password),
        state,
        labels: crate::labels::Labels::new(),
        databases: None,
        request_digest: None,
        recovery: None,
    }
}

/// The server version [`running_update`] reports (newer than the new instances' `15.18`).
pub const RUNNING_VERSION: &str = "18.6";

/// The `provisioning → running` update the suite uses.
pub fn running_update(port: u16) -> InstanceUpdate {
    InstanceUpdate::Running {
        connection: ConnectionInfo {
            host: "127.0.0.1".to_string(),
            port,
            user: "postgres".to_string(),
            database: "postgres".to_string(),
            dns_name: Some("db.example.invalid".to_string()),
            ssl_mode: Some("require".to_string()),
        },
        pg_version: Some(RUNNING_VERSION.to_string()),
    }
}

/// A password with quotes, a backslash, non-ASCII text and format markers, to catch escaping bugs.
pub const ODD_PASSWORD: &str = "pa'ss\"w\\ord ✓ ünïcødé $1 %s";

/// Panics with `what` and the error when `result` failed.
pub(crate) fn ok<T>(result: crate::Result<T>, what: &str) -> T {
    result.unwrap_or_else(|e: Error| panic!("{what}: {e}"))
}
