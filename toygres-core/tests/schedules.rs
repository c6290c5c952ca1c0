//! Schedules through `Toygres` on the memory catalog: creation and its refusals, the slot a
//! sweeper is handed, `schedule_fired` (idempotent, racing replicas, retention over the
//! schedule's own images only), and deletion keeping the images.

mod support;

use chrono::{DateTime, Duration as Minutes, DurationRound, Utc};
use std::time::Duration;
use support::*;
use toygres_core::schedule::{SCHEDULE_LABEL, SLOT_LABEL};
use toygres_core::testing::MockClusterExecutor;
use toygres_core::*;

/// A ready image of the source that `due`'s slot made (as the durable client would have).
async fn taken(fx: &Fixture, t: &Toygres, due: &DueImage) -> ImageRecord {
    let image = fx.ready_image(ImageType::Stock).await;
    t.set_image_labels(image.id, due.request.labels.clone()).await.unwrap()
}

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Minutes::minutes(1)).unwrap()
}

#[tokio::test]
async fn creation_is_validated_idempotent_and_names_are_unique() {
    let fx = fixture(ImageType::Stock).await;
    let t = fx.toygres(MockClusterExecutor::new());
    let request = CreateScheduleRequest::new("nightly", fx.source.id, "0 3 * * *");
    let unknown = CreateScheduleRequest::new("nightly", InstanceId::new(), "0 3 * * *");
    assert!(matches!(t.create_schedule(OperationId::new(), unknown).await, Err(Error::InstanceNotFound(_))));
    let bad = CreateScheduleRequest::new("nightly", fx.source.id, "0 3 * *");
    match t.create_schedule(OperationId::new(), bad).await {
        Err(Error::InvalidRequest { field: "cron", reason }) => assert!(reason.contains("4 fields"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(t.list_schedules().await.unwrap().is_empty(), "refusals record nothing");

    let operation = OperationId::new();
    let schedule = t.create_schedule(operation, request.clone()).await.unwrap();
    assert_eq!((schedule.last_slot, schedule.retention.keep_last), (None, schedule::DEFAULT_KEEP_LAST));
    assert_eq!(t.create_schedule(operation, request.clone()).await.unwrap(), schedule, "a retry");
    let other = request.clone().with_keep_last(2);
    assert!(matches!(t.create_schedule(operation, other).await, Err(Error::OperationReused { .. })));
    let taken = t.create_schedule(OperationId::new(), request.clone()).await;
    assert!(matches!(taken, Err(Error::ScheduleNameTaken(ref n)) if n == "nightly"), "{taken:?}");
    assert_eq!(t.list_schedules().await.unwrap(), vec![schedule.clone()]);

    t.delete_schedule(schedule.id).await.unwrap();
    assert!(matches!(t.get_schedule(schedule.id).await, Err(Error::ScheduleNotFound(_))));
    assert!(matches!(t.delete_schedule(schedule.id).await, Err(Error::ScheduleNotFound(_))));
    let spent = t.create_schedule(operation, request.clone()).await;
    assert!(matches!(spent, Err(Error::OperationSpent { entity: "schedule", .. })), "{spent:?}");
    t.create_schedule(OperationId::new(), request).await.expect("the name is free again");
}

#[tokio::test]
async fn the_sweeper_takes_the_latest_slot_once_and_retention_keeps_the_newest() {
    let fx = fixture(ImageType::Stock).await;
    let mut executor = MockClusterExecutor::new();
    executor.expect_delete_job().returning(|_| Ok(()));
    executor.expect_delete_image().returning(|_| Ok(()));
    let t = fx.toygres(executor);
    let request = CreateScheduleRequest::new("every-minute", fx.source.id, "* * * * *").with_keep_last(2);
    let schedule = t.create_schedule(OperationId::new(), request).await.unwrap();
    assert!(t.due_schedule_images(schedule.created_at).await.unwrap().is_empty(), "nothing at the creation");
    let unrelated = fx.ready_image(ImageType::Stock).await;

    // Five minutes later (a sweeper that was down): only the latest slot is due.
    let mut now = minute(schedule.created_at) + Minutes::minutes(5);
    let mut images = Vec::new();
    for round in 0..4 {
        let due = t.due_schedule_images(now + Minutes::seconds(20)).await.unwrap();
        assert_eq!(due.len(), 1, "round {round}: {due:?}");
        let due = &due[0];
        assert_eq!((due.slot, due.schedule.id), (now, schedule.id));
        assert_eq!(due.operation, schedule.slot_operation(now), "the same operation on every replica");
        assert_eq!(t.due_schedule_images(now + Minutes::seconds(40)).await.unwrap()[0].operation, due.operation);
        assert_eq!(due.request.labels.get(SCHEDULE_LABEL), Some(&schedule.id.to_string()));
        assert_eq!(due.request.labels.get(SLOT_LABEL), Some(&schedule::slot_text(now)));
        images.push(taken(&fx, &t, due).await);
        t.schedule_fired(due).await.unwrap();
        t.schedule_fired(due).await.expect("a retry is Ok");
        assert_eq!(t.get_schedule(schedule.id).await.unwrap().last_slot, Some(now));
        assert!(t.due_schedule_images(now + Minutes::seconds(59)).await.unwrap().is_empty(), "taken");
        now += Minutes::minutes(1);
    }
    // Retention: the newest two of the schedule's images; the source's other image untouched.
    let left: Vec<ImageId> = t.list_images(&ImageFilter::new()).await.unwrap().items.iter().map(|i| i.id).collect();
    assert_eq!(left, vec![unrelated.id, images[2].id, images[3].id]);

    // A stale DueImage (an older slot, from a slow replica) changes nothing.
    let mut stale = t.due_schedule_images(now).await.unwrap().remove(0);
    stale.slot = now - Minutes::minutes(3);
    t.schedule_fired(&stale).await.unwrap();
    assert_eq!(t.get_schedule(schedule.id).await.unwrap().last_slot, Some(now - Minutes::minutes(1)));

    // Deleting the schedule keeps its images; firing a slot of it afterwards is Ok and does nothing.
    let due = t.due_schedule_images(now).await.unwrap().remove(0);
    t.delete_schedule(schedule.id).await.unwrap();
    assert!(t.due_schedule_images(now).await.unwrap().is_empty());
    t.schedule_fired(&due).await.unwrap();
    assert_eq!(t.list_images(&ImageFilter::new()).await.unwrap().items.len(), 3, "its images are kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_firing_the_same_slot_converge() {
    let fx = fixture(ImageType::Stock).await;
    let mut executor = MockClusterExecutor::new();
    executor.expect_delete_job().returning(|_| Ok(()));
    executor.expect_delete_image().returning(|_| Ok(()));
    let t = fx.toygres(executor);
    let request = CreateScheduleRequest::new("hourly", fx.source.id, "0 * * * *")
        .with_keep_last(1)
        .with_keep_younger_than(Duration::from_secs(0));
    let schedule = t.create_schedule(OperationId::new(), request).await.unwrap();
    let now = schedule.created_at + Minutes::hours(1);
    let due = t.due_schedule_images(now).await.unwrap().remove(0);
    for _ in 0..3 {
        taken(&fx, &t, &due).await;
    }
    let replicas: Vec<_> = (0..8)
        .map(|_| {
            let (t, due) = (t.clone(), due.clone());
            tokio::spawn(async move { t.schedule_fired(&due).await })
        })
        .collect();
    for replica in replicas {
        replica.await.unwrap().expect("every replica's call succeeds");
    }
    assert_eq!(t.get_schedule(schedule.id).await.unwrap().last_slot, Some(due.slot));
    assert_eq!(t.list_images(&ImageFilter::new()).await.unwrap().items.len(), 1, "keep_last 1");
}
