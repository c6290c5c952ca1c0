//! Conformance property of point-in-time restore: a new instance's recovery plan and an
//! instance's continuous protection are recorded and read back, the protection even once the
//! instance is deleted.

use super::{new_instance, ok, running_update};
use crate::catalog::CatalogStore;
use crate::error::Error;
use crate::ids::{ImageId, InstanceId, OperationId};
use crate::instance::InstanceUpdate;
use crate::state::InstanceState;
use crate::wal::{Lsn, Protection, ProtectionState, RecoveryPlan, RecoveryTarget, RestorePoint};
use chrono::Utc;
use std::sync::Arc;

/// A recovery plan round-trips through `create_instance` and `get_instance`;
/// `set_instance_protection` records, replaces and (with `None`) forgets an instance's
/// protection, in any state (a deleted instance keeps its archive's record, though it is no
/// longer read or listed), and refuses an unknown id with `InstanceNotFound`.
pub async fn recovery_plans_and_protection_round_trip<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let lsn = |text: &str| text.parse::<Lsn>().expect("a valid LSN");
    let base = ImageId::new();
    let plan = RecoveryPlan {
        source_instance_id: InstanceId::new(),
        target: RecoveryTarget::RestorePoint { name: "before-migration".into(), lsn: lsn("0/3000148") },
        base_image_id: base,
        timeline: 2,
        from_lsn: lsn("0/2000028"),
        head_lsn: lsn("16/B374D848"),
        requested_at: Utc::now(),
    };
    let mut new = new_instance("pitr", InstanceState::Provisioning, "pitr-pw");
    (new.source_image_id, new.recovery) = (Some(base), Some(plan.clone()));
    let created = ok(catalog.create_instance(OperationId::new(), &new).await, "create a point-in-time restore");
    assert_eq!((created.recovery.as_ref(), created.protection.as_ref()), (Some(&plan), None));
    let read = ok(catalog.get_instance(created.id).await, "get the restored instance");
    assert_eq!(read, created, "the recovery plan reads back as created");

    let mut protection = Protection::started(None);
    protection.restore_points.push(RestorePoint {
        name: "nightly-check".into(),
        lsn: lsn("0/5000060"),
        time: Utc::now(),
    });
    let running = ok(catalog.update_instance(created.id, created.state, running_update(5433)).await, "running");
    let protected = ok(catalog.set_instance_protection(running.id, Some(protection.clone())).await, "protect");
    assert_eq!(protected.protection.as_ref(), Some(&protection), "the protection is returned");
    assert_eq!((protected.state, protected.recovery.as_ref()), (InstanceState::Running, Some(&plan)));
    assert!(protected.updated_at >= running.updated_at, "updated_at went back");
    let read = ok(catalog.get_instance(running.id).await, "get the protected instance");
    assert_eq!(read, protected, "the protection reads back as recorded");

    let deleting = ok(catalog.update_instance(read.id, read.state, InstanceUpdate::Deleting).await, "deleting");
    assert_eq!(deleting.protection.as_ref(), Some(&protection), "a state change keeps the protection");
    let deleted = ok(catalog.update_instance(read.id, deleting.state, InstanceUpdate::Deleted).await, "deleted");
    assert_eq!(deleted.protection.as_ref(), Some(&protection), "deleting the instance keeps the protection");
    let stopped = Protection { state: ProtectionState::Stopped, ..protection };
    let kept =
        ok(catalog.set_instance_protection(read.id, Some(stopped.clone())).await, "stop a deleted one's protection");
    assert_eq!((kept.id, kept.state), (read.id, InstanceState::Deleted), "the deleted instance's record");
    assert_eq!((kept.protection.as_ref(), kept.recovery.as_ref()), (Some(&stopped), Some(&plan)));
    expect_err!(catalog.get_instance(read.id).await, Error::InstanceNotFound(_), "get of a deleted instance");
    let any = ok(catalog.get_instance_including_deleted(read.id).await, "read a deleted instance");
    assert_eq!(any, kept, "the deleted instance reads back, protection and all");
    let unknown = catalog.get_instance_including_deleted(InstanceId::new()).await;
    expect_err!(unknown, Error::InstanceNotFound(_), "an unknown instance, deleted or not");

    let forgotten = ok(catalog.set_instance_protection(read.id, None).await, "forget the protection");
    assert_eq!((forgotten.state, forgotten.protection), (InstanceState::Deleted, None), "None forgets it");
    let again = ok(catalog.set_instance_protection(read.id, None).await, "forget it again");
    assert_eq!(again.protection, None, "forgetting twice is harmless");

    let unknown = InstanceId::new();
    let refused = catalog.set_instance_protection(unknown, Some(stopped.clone())).await;
    expect_err!(refused, Error::InstanceNotFound(_), "protection of an unknown instance");
}
