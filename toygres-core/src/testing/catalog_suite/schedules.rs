//! Conformance properties of schedules: idempotent creation bound to its request, unique live
//! names, reads and deletion, and the last slot as a compare-and-set.

use super::{ok, RACERS};
use crate::catalog::CatalogStore;
use crate::domain::ImageFormat;
use crate::error::Error;
use crate::ids::{InstanceId, OperationId, ScheduleId};
use crate::schedule::{CreateScheduleRequest, NewSchedule};
use chrono::{DateTime, Duration as Span, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

/// A new schedule named `name` (physical images at 03:00, keeping 3 and a day's worth).
pub fn new_schedule(name: &str) -> NewSchedule {
    CreateScheduleRequest::new(name, InstanceId::new(), "0 3 * * *")
        .with_format(ImageFormat::Physical)
        .with_keep_last(3)
        .with_keep_younger_than(Duration::from_secs(86_400))
        .to_new()
        .expect("a valid schedule")
}

fn slot(minutes: i64) -> DateTime<Utc> {
    "2026-12-05T03:00:00Z".parse::<DateTime<Utc>>().unwrap() + Span::minutes(minutes)
}

/// Creating is idempotent on the operation and bound to the request digest
/// ([`Error::OperationReused`]); a live name belongs to one schedule
/// ([`Error::ScheduleNameTaken`]) and is free again once it is deleted; the operation of a
/// deleted schedule returns it, with `deleted_at` set.
pub async fn create_schedule_is_idempotent_and_names_are_unique<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let operation = OperationId::new();
    let new = new_schedule("nightly");
    let schedule = ok(catalog.create_schedule(operation, &new).await, "create");
    assert_eq!(
        (&schedule.name, schedule.instance_id, schedule.cron.as_str(), schedule.format),
        (&new.name, new.instance_id, "0 3 * * *", ImageFormat::Physical)
    );
    assert_eq!((schedule.retention, schedule.last_slot, schedule.deleted_at), (new.retention, None, None));
    assert_eq!(schedule.operation_id, operation);
    assert_eq!(ok(catalog.create_schedule(operation, &new).await, "retry"), schedule, "a retry returns it");

    let mut other = new_schedule("other");
    other.request_digest = Some("another digest".into());
    expect_err!(catalog.create_schedule(operation, &other).await, Error::OperationReused { .. }, "another request");
    expect_err!(catalog.get_schedule(ScheduleId::new()).await, Error::ScheduleNotFound(_), "unknown id");
    let same_name = catalog.create_schedule(OperationId::new(), &new_schedule("nightly")).await;
    expect_err!(same_name, Error::ScheduleNameTaken(_), "a live name");
    assert_eq!(ok(catalog.list_schedules().await, "list"), vec![schedule.clone()], "refusals record nothing");

    ok(catalog.delete_schedule(schedule.id).await, "delete");
    let again = ok(catalog.create_schedule(operation, &new).await, "the deleted one's operation");
    assert_eq!(again.id, schedule.id);
    assert!(again.deleted_at.is_some(), "returned deleted: {again:?}");
    let reborn = ok(catalog.create_schedule(OperationId::new(), &new_schedule("nightly")).await, "name freed");
    assert_ne!(reborn.id, schedule.id);
}

/// Get and list return what was written (listing oldest first, never deleted ones); deleting an
/// unknown or deleted schedule is [`Error::ScheduleNotFound`].
pub async fn schedules_read_list_and_delete<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    assert!(ok(catalog.list_schedules().await, "empty").is_empty());
    let mut created = Vec::new();
    for name in ["first", "second", "third"] {
        created.push(ok(catalog.create_schedule(OperationId::new(), &new_schedule(name)).await, name));
    }
    for schedule in &created {
        assert_eq!(&ok(catalog.get_schedule(schedule.id).await, "get"), schedule, "get returns what was created");
    }
    assert_eq!(ok(catalog.list_schedules().await, "list"), created, "oldest first");
    ok(catalog.delete_schedule(created[1].id).await, "delete");
    expect_err!(catalog.get_schedule(created[1].id).await, Error::ScheduleNotFound(_), "deleted");
    expect_err!(catalog.delete_schedule(created[1].id).await, Error::ScheduleNotFound(_), "deleted twice");
    expect_err!(catalog.delete_schedule(ScheduleId::new()).await, Error::ScheduleNotFound(_), "unknown");
    assert_eq!(ok(catalog.list_schedules().await, "list"), vec![created[0].clone(), created[2].clone()]);
    expect_err!(catalog.advance_schedule(created[1].id, None, slot(0)).await, Error::ScheduleNotFound(_), "deleted");
}

/// The last slot moves only from the expected one: a stale expectation is
/// [`Error::StateConflict`] and changes nothing; the new slot reads back.
pub async fn advance_schedule_is_a_compare_and_set<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let schedule = ok(catalog.create_schedule(OperationId::new(), &new_schedule("cas")).await, "create");
    let first = ok(catalog.advance_schedule(schedule.id, None, slot(0)).await, "first slot");
    assert_eq!(first.last_slot, Some(slot(0)));
    assert_eq!(ok(catalog.get_schedule(schedule.id).await, "get").last_slot, Some(slot(0)));
    match catalog.advance_schedule(schedule.id, None, slot(60)).await {
        Err(Error::StateConflict { entity: "schedule", .. }) => {}
        other => panic!("a stale expectation: expected StateConflict, got {other:?}"),
    }
    expect_err!(
        catalog.advance_schedule(schedule.id, Some(slot(30)), slot(60)).await,
        Error::StateConflict { .. },
        "another slot expected"
    );
    assert_eq!(ok(catalog.get_schedule(schedule.id).await, "get").last_slot, Some(slot(0)), "unchanged");
    let second = ok(catalog.advance_schedule(schedule.id, Some(slot(0)), slot(60)).await, "second slot");
    assert_eq!(second, {
        let mut s = first.clone();
        s.last_slot = Some(slot(60));
        s
    });
    expect_err!(
        catalog.advance_schedule(ScheduleId::new(), None, slot(0)).await,
        Error::ScheduleNotFound(_),
        "unknown"
    );
}

/// Of [`RACERS`] tasks advancing one schedule from the same slot, exactly one wins.
pub async fn racing_schedule_advances_have_one_winner<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let schedule = ok(catalog.create_schedule(OperationId::new(), &new_schedule("race")).await, "create");
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let (catalog, barrier) = (catalog.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                catalog.advance_schedule(schedule.id, None, slot(i as i64 + 1)).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(s) => winners.push(s.last_slot),
            Err(Error::StateConflict { .. }) => {}
            Err(e) => panic!("a racer failed with {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racer wins: {winners:?}");
    assert_eq!(ok(catalog.get_schedule(schedule.id).await, "get").last_slot, winners[0]);
}
