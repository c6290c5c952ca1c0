//! Conformance properties of instances.

use super::{new_instance, ok, running_update, ODD_PASSWORD, RACERS, RUNNING_VERSION};
use crate::catalog::CatalogStore;
use crate::error::Error;
use crate::filter::InstanceFilter;
use crate::ids::{InstanceId, OperationId};
use crate::image::ImageType;
use crate::instance::{InstanceRecord, InstanceUpdate};
use crate::state::InstanceState::{self, *};
use std::sync::Arc;
use tokio::sync::Barrier;

/// The update that moves an instance into `state` (there is none into `provisioning`).
fn update_into(state: InstanceState) -> Option<InstanceUpdate> {
    match state {
        Provisioning => None,
        Running => Some(running_update(5432)),
        Failed => Some(InstanceUpdate::Failed { reason: "restore job failed: bad checksum".into() }),
        Deleting => Some(InstanceUpdate::Deleting),
        Deleted => Some(InstanceUpdate::Deleted),
    }
}

/// A new instance driven along the lifecycle into `state`.
async fn instance_in<C: CatalogStore + ?Sized>(catalog: &C, state: InstanceState, name: &str) -> InstanceRecord {
    let new = new_instance(name, Provisioning, "instance-pw");
    let mut record = ok(catalog.create_instance(OperationId::new(), &new).await, "create instance");
    let path: &[InstanceState] = match state {
        Provisioning => &[],
        Running => &[Running],
        Failed => &[Failed],
        Deleting => &[Running, Deleting],
        Deleted => &[Running, Deleting, Deleted],
    };
    for next in path {
        let update = update_into(*next).expect("path never goes back to provisioning");
        let moved = catalog.update_instance(record.id, record.state, update).await;
        record = ok(moved, &format!("move instance to {next}"));
    }
    record
}

/// Every allowed instance transition succeeds and applies its fields; every other one is
/// refused with `InvalidTransition` and leaves the record as it was.
pub async fn instance_transitions<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    for from in InstanceState::ALL.iter().copied() {
        for to in InstanceState::ALL.iter().copied() {
            let Some(update) = update_into(to) else { continue };
            let what = format!("instance {from} -> {to}");
            let before = instance_in(&*catalog, from, &format!("t-{from}-{to}")).await;
            let result = catalog.update_instance(before.id, from, update).await;
            if from.can_transition_to(to) {
                let after = ok(result, &what);
                assert_eq!((after.id, after.state, after.operation_id), (before.id, to, before.operation_id), "{what}");
                assert_eq!(after.created_at, before.created_at, "{what}: created_at must not change");
                assert!(after.updated_at >= before.updated_at, "{what}: updated_at went back");
                match to {
                    Running => {
                        assert_eq!(after.connection, Some(conn(5432)), "{what}");
                        assert_eq!(
                            after.pg_version.as_deref(),
                            Some(RUNNING_VERSION),
                            "{what}: the running version replaces the image's"
                        );
                    }
                    Failed => assert_eq!(after.failure_reason.as_deref(), Some("restore job failed: bad checksum")),
                    _ => {}
                }
                if to == Deleted {
                    expect_err!(catalog.get_instance(before.id).await, Error::InstanceNotFound(_), &what);
                } else {
                    assert_eq!(ok(catalog.get_instance(before.id).await, &what), after, "{what}: get differs");
                }
            } else {
                match result {
                    Err(Error::InvalidTransition { entity: "instance", from: f, to: t }) => {
                        assert_eq!((f.as_str(), t.as_str()), (from.as_str(), to.as_str()), "{what}")
                    }
                    other => panic!("{what}: expected InvalidTransition, got {other:?}"),
                }
                if from == Deleted {
                    expect_err!(catalog.get_instance(before.id).await, Error::InstanceNotFound(_), &what);
                } else {
                    assert_eq!(ok(catalog.get_instance(before.id).await, &what), before, "{what}: record changed");
                }
            }
        }
    }
    let registered = new_instance("registered", Running, "pw");
    let record = ok(catalog.create_instance(OperationId::new(), &registered).await, "register a running instance");
    assert_eq!(record.state, Running);
    ok(catalog.update_instance(record.id, Running, InstanceUpdate::Deleting).await, "delete a registered instance");
}

fn conn(port: u16) -> crate::instance::ConnectionInfo {
    match running_update(port) {
        InstanceUpdate::Running { connection, .. } => connection,
        _ => unreachable!("running_update builds Running"),
    }
}

/// A compare-and-set on the wrong current state is `StateConflict` and changes nothing; an
/// unknown id is `InstanceNotFound`.
pub async fn instance_compare_and_set_conflicts<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let provisioning = instance_in(&*catalog, Provisioning, "cas-provisioning").await;
    match catalog.update_instance(provisioning.id, Running, InstanceUpdate::Deleting).await {
        Err(Error::StateConflict { entity: "instance", id, expected, actual }) => assert_eq!(
            (id, expected.as_str(), actual.as_str()),
            (provisioning.id.to_string(), "running", "provisioning")
        ),
        other => panic!("deleting a provisioning instance as if running: expected StateConflict, got {other:?}"),
    }
    assert_eq!(ok(catalog.get_instance(provisioning.id).await, "get"), provisioning, "a lost CAS changed it");

    let running = instance_in(&*catalog, Running, "cas-running").await;
    let lost = catalog.update_instance(running.id, Provisioning, running_update(9999)).await;
    expect_err!(lost, Error::StateConflict { .. }, "running a running instance again");
    assert_eq!(ok(catalog.get_instance(running.id).await, "get"), running);

    let unknown = InstanceId::new();
    match catalog.update_instance(unknown, Provisioning, InstanceUpdate::Failed { reason: "x".into() }).await {
        Err(Error::InstanceNotFound(id)) => assert_eq!(id, unknown.to_string()),
        other => panic!("updating an unknown instance: expected InstanceNotFound, got {other:?}"),
    }
}

/// `create_instance` is idempotent on the operation id; a live name belongs to one operation
/// (`NameTaken`, nothing created) until that instance is deleted.
pub async fn create_instance_is_idempotent_and_names_are_unique<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let (op1, op2) = (OperationId::new(), OperationId::new());
    let first = ok(catalog.create_instance(op1, &new_instance("alpha", Provisioning, "pw1")).await, "create");
    assert_eq!((first.operation_id, first.name.as_str(), first.state), (op1, "alpha", Provisioning));
    assert_eq!(ok(catalog.create_instance(op1, &new_instance("alpha", Provisioning, "pw1")).await, "retry"), first);
    let renamed = ok(catalog.create_instance(op1, &new_instance("beta", Running, "other")).await, "retry, renamed");
    assert_eq!(renamed, first, "a retried operation must get the record it created");
    expect_err!(catalog.get_instance_by_name("beta").await, Error::InstanceNotFound(_), "retry created beta");
    assert_eq!(ok(catalog.instance_password(first.id).await, "pw").expose(), "pw1");

    match catalog.create_instance(op2, &new_instance("alpha", Provisioning, "pw2")).await {
        Err(Error::NameTaken(name)) => assert_eq!(name, "alpha"),
        other => panic!("second instance named alpha: expected NameTaken, got {other:?}"),
    }
    assert_eq!(
        ok(catalog.list_instances(&InstanceFilter::new()).await, "list").len(),
        1,
        "NameTaken must create nothing"
    );

    let failed = ok(catalog.update_instance(first.id, Provisioning, update_into(Failed).unwrap()).await, "fail");
    let taken = catalog.create_instance(op2, &new_instance("alpha", Provisioning, "pw2")).await;
    expect_err!(taken, Error::NameTaken(_), "name of a failed instance");
    ok(catalog.update_instance(failed.id, Failed, InstanceUpdate::Deleting).await, "deleting");
    let taken = catalog.create_instance(op2, &new_instance("alpha", Provisioning, "pw2")).await;
    expect_err!(taken, Error::NameTaken(_), "name of a deleting instance");
    ok(catalog.update_instance(failed.id, Deleting, InstanceUpdate::Deleted).await, "deleted");

    let second = ok(catalog.create_instance(op2, &new_instance("alpha", Provisioning, "pw2")).await, "reuse name");
    assert_ne!(second.id, first.id);
    assert_eq!(ok(catalog.get_instance_by_name("alpha").await, "by name"), second);
    assert_eq!(ok(catalog.instance_password(second.id).await, "pw").expose(), "pw2");
    let tombstone = ok(catalog.create_instance(op1, &new_instance("alpha", Provisioning, "pw1")).await, "retry op1");
    assert_eq!((tombstone.id, tombstone.state), (first.id, Deleted), "a retried creation must not resurrect");
}

/// [`RACERS`] operations race to create instances with one name: exactly one wins, the others
/// get `NameTaken`. Then [`RACERS`] retries of one operation race: all get the same record.
pub async fn racing_instance_names<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    for same_operation in [false, true] {
        let name = if same_operation { "race-same-op" } else { "race-name" };
        let op = OperationId::new();
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let (catalog, barrier) = (catalog.clone(), barrier.clone());
                let op = if same_operation { op } else { OperationId::new() };
                let new = new_instance(name, Provisioning, &format!("racer-{i}"));
                tokio::spawn(async move {
                    barrier.wait().await;
                    catalog.create_instance(op, &new).await
                })
            })
            .collect();
        let mut created = Vec::new();
        for task in tasks {
            match task.await.expect("racer panicked") {
                Ok(record) => created.push(record),
                Err(Error::NameTaken(n)) if !same_operation => assert_eq!(n, name),
                Err(other) => panic!("racing creations of {name}: unexpected {other:?}"),
            }
        }
        let expected = if same_operation { RACERS } else { 1 };
        assert_eq!(created.len(), expected, "racing creations of {name}: {created:?}");
        assert!(created.windows(2).all(|w| w[0] == w[1]), "retries of one operation got different records");
        let listed: Vec<_> = ok(catalog.list_instances(&InstanceFilter::new()).await, "list")
            .into_iter()
            .filter(|r| r.name == name)
            .collect();
        assert_eq!(listed, vec![created[0].clone()], "exactly one instance named {name}");
    }
}

/// `get_instance`, `get_instance_by_name` and `list_instances` return exactly what was written,
/// oldest first.
pub async fn list_and_get_instances<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    assert!(
        ok(catalog.list_instances(&InstanceFilter::new()).await, "list").is_empty(),
        "a fresh catalog lists instances"
    );
    let mut created = Vec::new();
    for (name, state) in [("one", Provisioning), ("two", Running), ("three", Provisioning)] {
        let mut new = new_instance(name, state, "pw");
        if name == "two" {
            (new.dns_label, new.pg_version, new.source_image_id, new.image_type) = (None, None, None, ImageType::Stock);
        }
        let record = ok(catalog.create_instance(OperationId::new(), &new).await, "create");
        let expected = (new.name.as_str(), new.dns_label.as_deref(), new.image_type, new.pg_version.as_deref());
        assert_eq!(
            (record.name.as_str(), record.dns_label.as_deref(), record.image_type, record.pg_version.as_deref()),
            expected
        );
        assert_eq!((record.source_image_id, record.state), (new.source_image_id, state));
        assert_eq!((record.connection.as_ref(), record.failure_reason.as_deref()), (None, None));
        created.push(record);
    }
    let one = ok(catalog.update_instance(created[0].id, Provisioning, running_update(6543)).await, "one running");
    assert_eq!(one.connection, Some(conn(6543)));
    let failed = InstanceUpdate::Failed { reason: "three ✗ failed".into() };
    let three = ok(catalog.update_instance(created[2].id, Provisioning, failed).await, "three failed");
    let current = vec![one, created[1].clone(), three];
    for record in &current {
        assert_eq!(&ok(catalog.get_instance(record.id).await, "get"), record, "get must return what was written");
        assert_eq!(&ok(catalog.get_instance_by_name(&record.name).await, "by name"), record);
    }
    for pair in created.windows(2) {
        assert!(pair[0].created_at <= pair[1].created_at, "created_at must follow creation order");
    }
    let mut expected = current.clone();
    expected.sort_by_key(|r| (r.created_at, r.id));
    assert_eq!(
        ok(catalog.list_instances(&InstanceFilter::new()).await, "list"),
        expected,
        "all instances, oldest first"
    );

    let unknown = InstanceId::new();
    match catalog.get_instance(unknown).await {
        Err(Error::InstanceNotFound(id)) => assert_eq!(id, unknown.to_string()),
        other => panic!("get of an unknown instance: expected InstanceNotFound, got {other:?}"),
    }
    expect_err!(catalog.get_instance_by_name("nobody").await, Error::InstanceNotFound(_), "unknown name");
}

/// A deleted instance is gone from every lookup and list, and so is its password.
pub async fn deleted_instances_are_gone<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let keep = instance_in(&*catalog, Running, "kept").await;
    let instance = instance_in(&*catalog, Running, "doomed").await;
    let deleting = ok(catalog.update_instance(instance.id, Running, InstanceUpdate::Deleting).await, "deleting");
    assert!(
        ok(catalog.list_instances(&InstanceFilter::new()).await, "list").contains(&deleting),
        "a deleting instance is still listed"
    );
    ok(catalog.update_instance(instance.id, Deleting, InstanceUpdate::Deleted).await, "deleted");

    expect_err!(catalog.get_instance(instance.id).await, Error::InstanceNotFound(_), "get of a deleted instance");
    expect_err!(catalog.get_instance_by_name("doomed").await, Error::InstanceNotFound(_), "by name, deleted");
    expect_err!(catalog.instance_password(instance.id).await, Error::InstanceNotFound(_), "password, deleted");
    assert_eq!(
        ok(catalog.list_instances(&InstanceFilter::new()).await, "list"),
        vec![keep],
        "only the live instance is listed"
    );
}

/// An instance's password round-trips exactly, survives state changes, and is per instance.
pub async fn instance_password_round_trips<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let a =
        ok(catalog.create_instance(OperationId::new(), &new_instance("pw-a", Provisioning, ODD_PASSWORD)).await, "a");
    let b = ok(catalog.create_instance(OperationId::new(), &new_instance("pw-b", Running, "plain-b")).await, "b");
    assert_eq!(ok(catalog.instance_password(a.id).await, "pw a").expose(), ODD_PASSWORD);
    assert_eq!(ok(catalog.instance_password(b.id).await, "pw b").expose(), "plain-b");
    let a = ok(catalog.update_instance(a.id, Provisioning, running_update(1)).await, "a running");
    assert_eq!(ok(catalog.instance_password(a.id).await, "pw a").expose(), ODD_PASSWORD);
    assert!(!format!("{a:?}").contains("ünïcødé"), "the instance record shows its password");
    expect_err!(catalog.instance_password(InstanceId::new()).await, Error::InstanceNotFound(_), "unknown instance");
}
