//! Conformance properties of images.

use super::{new_image, ok, ready_update, ODD_PASSWORD, RACERS};
use crate::catalog::CatalogStore;
use crate::error::Error;
use crate::ids::{ImageId, InstanceId, OperationId};
use crate::image::{ImageFilter, ImageRecord, ImageType, ImageUpdate};
use crate::state::ImageState::{self, *};
use std::sync::Arc;
use tokio::sync::Barrier;

/// The update that moves an image into `state` (there is none into `creating`).
fn update_into(state: ImageState) -> Option<ImageUpdate> {
    match state {
        Creating => None,
        Ready => Some(ready_update("transition-pw")),
        Failed => Some(ImageUpdate::Failed { reason: "backup job failed: disk full".into() }),
        Deleting => Some(ImageUpdate::Deleting),
        Deleted => Some(ImageUpdate::Deleted),
    }
}

/// A new image driven along the lifecycle into `state`.
async fn image_in<C: CatalogStore + ?Sized>(catalog: &C, state: ImageState, name: &str) -> ImageRecord {
    let mut record =
        ok(catalog.reserve_image(OperationId::new(), &new_image(InstanceId::new(), name)).await, "reserve");
    let path: &[ImageState] = match state {
        Creating => &[],
        Ready => &[Ready],
        Failed => &[Failed],
        Deleting => &[Ready, Deleting],
        Deleted => &[Ready, Deleting, Deleted],
    };
    for next in path {
        let update = update_into(*next).expect("path never goes back to creating");
        record = ok(catalog.update_image(record.id, record.state, update).await, &format!("move image to {next}"));
    }
    record
}

/// Every allowed image transition succeeds and applies its fields; every other one is refused
/// with `InvalidTransition` and leaves the record as it was.
pub async fn image_transitions<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    for from in ImageState::ALL.iter().copied() {
        for to in ImageState::ALL.iter().copied() {
            let Some(update) = update_into(to) else { continue };
            let what = format!("image {from} -> {to}");
            let before = image_in(&*catalog, from, &format!("t-{from}-{to}")).await;
            let result = catalog.update_image(before.id, from, update).await;
            if from.can_transition_to(to) {
                let after = ok(result, &what);
                assert_eq!((after.id, after.state, after.operation_id), (before.id, to, before.operation_id), "{what}");
                assert_eq!(after.created_at, before.created_at, "{what}: created_at must not change");
                assert!(after.updated_at >= before.updated_at, "{what}: updated_at went back");
                match to {
                    Ready => {
                        assert_eq!(after.size_bytes, Some(123_456_789_012), "{what}");
                        assert_eq!(after.checksum.as_deref(), Some("sha256:00ff"), "{what}");
                        assert_eq!(after.pg_version.as_deref(), Some("15.18"), "{what}");
                        assert_eq!(after.image_type, ImageType::PgDurable, "{what}");
                    }
                    Failed => assert_eq!(after.failure_reason.as_deref(), Some("backup job failed: disk full")),
                    _ => {}
                }
                if to == Deleted {
                    expect_err!(catalog.get_image(before.id).await, Error::ImageNotFound(_), &what);
                } else {
                    assert_eq!(ok(catalog.get_image(before.id).await, &what), after, "{what}: get differs from update");
                }
            } else {
                match result {
                    Err(Error::InvalidTransition { entity: "image", from: f, to: t }) => {
                        assert_eq!((f.as_str(), t.as_str()), (from.as_str(), to.as_str()), "{what}")
                    }
                    other => panic!("{what}: expected InvalidTransition, got {other:?}"),
                }
                if from == Deleted {
                    expect_err!(catalog.get_image(before.id).await, Error::ImageNotFound(_), &what);
                } else {
                    assert_eq!(ok(catalog.get_image(before.id).await, &what), before, "{what}: record changed");
                }
            }
        }
    }
}

/// A compare-and-set on the wrong current state is `StateConflict` naming the actual state, and
/// changes nothing; an unknown id is `ImageNotFound`.
pub async fn image_compare_and_set_conflicts<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let creating = image_in(&*catalog, Creating, "cas-creating").await;
    for expected in [Ready, Failed] {
        match catalog.update_image(creating.id, expected, ImageUpdate::Deleting).await {
            Err(Error::StateConflict { entity: "image", id, expected: e, actual }) => {
                assert_eq!((id, e.as_str(), actual.as_str()), (creating.id.to_string(), expected.as_str(), "creating"))
            }
            other => panic!("deleting a creating image as if {expected}: expected StateConflict, got {other:?}"),
        }
    }
    assert_eq!(ok(catalog.get_image(creating.id).await, "get"), creating, "a lost CAS changed the record");

    let ready = image_in(&*catalog, Ready, "cas-ready").await;
    let lost = catalog.update_image(ready.id, Creating, ImageUpdate::Failed { reason: "late".into() }).await;
    expect_err!(lost, Error::StateConflict { .. }, "failing a ready image");
    assert_eq!(ok(catalog.get_image(ready.id).await, "get"), ready);
    assert_eq!(ok(catalog.image_source_password(ready.id).await, "password").expose(), "transition-pw");

    let lost = catalog.update_image(ready.id, Creating, ready_update("other-pw")).await;
    expect_err!(lost, Error::StateConflict { .. }, "readying a ready image again");
    assert_eq!(ok(catalog.image_source_password(ready.id).await, "password").expose(), "transition-pw");

    let deleted = image_in(&*catalog, Deleted, "cas-deleted").await;
    match catalog.update_image(deleted.id, Ready, ImageUpdate::Deleting).await {
        Err(Error::StateConflict { actual, .. }) => assert_eq!(actual, "deleted"),
        other => panic!("deleting a deleted image: expected StateConflict(actual deleted), got {other:?}"),
    }
    let unknown = ImageId::new();
    match catalog.update_image(unknown, Creating, ImageUpdate::Failed { reason: "x".into() }).await {
        Err(Error::ImageNotFound(id)) => assert_eq!(id, unknown),
        other => panic!("updating an unknown image: expected ImageNotFound, got {other:?}"),
    }
}

/// Reserving twice with one operation id returns the first record, whatever its state now.
pub async fn reserve_image_is_idempotent<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let (op, source) = (OperationId::new(), InstanceId::new());
    let first = ok(catalog.reserve_image(op, &new_image(source, "nightly")).await, "reserve");
    assert_eq!((first.state, first.operation_id, first.source_instance_id), (Creating, op, source));
    assert_eq!(first.name, "nightly");
    assert_eq!(first.format, crate::ImageFormat::Physical, "the catalog keeps the requested format");
    assert_eq!(ok(catalog.reserve_image(op, &new_image(source, "nightly")).await, "again"), first);
    let renamed = ok(catalog.reserve_image(op, &new_image(InstanceId::new(), "other")).await, "again, other fields");
    assert_eq!(renamed, first, "a retried operation must get the record it created, not a new one");

    let ready = ok(catalog.update_image(first.id, Creating, ready_update("pw")).await, "ready");
    assert_eq!(ok(catalog.reserve_image(op, &new_image(source, "nightly")).await, "after ready"), ready);

    let second = ok(catalog.reserve_image(OperationId::new(), &new_image(source, "nightly")).await, "other op");
    assert_ne!(second.id, first.id, "another operation reserves another image");
    let filter = ImageFilter { source_instance_id: Some(source), state: None, ..ImageFilter::default() };
    let listed: Vec<_> = ok(catalog.list_images(&filter).await, "list").into_iter().map(|r| r.id).collect();
    assert_eq!(listed.len(), 2, "retries must not create duplicates: {listed:?}");
}

/// [`RACERS`] tasks race to move one `creating` image to `ready` or `failed`: exactly one wins,
/// every other gets `StateConflict`, and the record is the winner's. Four rounds.
pub async fn racing_image_updates<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    for round in 0..4 {
        let image = image_in(&*catalog, Creating, &format!("race-{round}")).await;
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let (catalog, barrier) = (catalog.clone(), barrier.clone());
                let update = if (i + round) % 2 == 0 {
                    ready_update(&format!("racer-pw-{i}"))
                } else {
                    ImageUpdate::Failed { reason: format!("racer {i} failed it") }
                };
                tokio::spawn(async move {
                    barrier.wait().await;
                    (i, catalog.update_image(image.id, Creating, update).await)
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            match task.await.expect("racer panicked") {
                (i, Ok(record)) => winners.push((i, record)),
                (_, Err(e)) => losers.push(e),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one racer must win, winners: {winners:?}");
        let (i, winner) = winners.pop().expect("one winner");
        for e in losers {
            match e {
                Error::StateConflict { expected, actual, .. } => {
                    assert_eq!((expected.as_str(), actual.as_str()), ("creating", winner.state.as_str()))
                }
                other => panic!("round {round}: a losing racer must get StateConflict, got {other:?}"),
            }
        }
        assert_eq!(ok(catalog.get_image(image.id).await, "get"), winner, "round {round}: record is not the winner's");
        match winner.state {
            Ready => {
                assert_eq!(ok(catalog.image_source_password(image.id).await, "pw").expose(), format!("racer-pw-{i}"))
            }
            Failed => {
                assert_eq!(winner.failure_reason, Some(format!("racer {i} failed it")));
                expect_err!(catalog.image_source_password(image.id).await, Error::ImageNotReady { .. }, "failed image");
            }
            other => panic!("round {round}: winner left the image {other}"),
        }
    }
}

/// `get_image` and `list_images` return exactly what was written: oldest first, filtered by
/// source instance and state, with every field as set.
pub async fn list_and_get_images<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    assert!(ok(catalog.list_images(&ImageFilter::default()).await, "list").is_empty(), "a fresh catalog lists images");
    let (a, b) = (InstanceId::new(), InstanceId::new());
    let mut reserved = Vec::new();
    for (source, name) in [(a, "a1"), (b, "b1"), (a, "a2"), (b, "b2"), (a, "a3")] {
        reserved.push(ok(catalog.reserve_image(OperationId::new(), &new_image(source, name)).await, "reserve"));
    }
    let a1 = ok(catalog.update_image(reserved[0].id, Creating, ready_update("pw-a1")).await, "a1 ready");
    let b1 =
        ok(catalog.update_image(reserved[1].id, Creating, ImageUpdate::Failed { reason: "b1 ✗".into() }).await, "b1");
    let a2 = ok(catalog.update_image(reserved[2].id, Creating, ready_update("pw-a2")).await, "a2 ready");
    let a2 = ok(catalog.update_image(a2.id, Ready, ImageUpdate::Deleting).await, "a2 deleting");
    let current = [a1.clone(), b1.clone(), a2.clone(), reserved[3].clone(), reserved[4].clone()];

    for record in &current {
        assert_eq!(&ok(catalog.get_image(record.id).await, "get"), record, "get must return what was written");
    }
    let r4 = &reserved[4];
    assert_eq!((r4.name.as_str(), r4.description.as_deref()), ("a3", Some("suite image a3")));
    assert_eq!((r4.size_bytes, r4.checksum.as_deref(), r4.pg_version.as_deref()), (None, None, None));
    assert_eq!((r4.image_type, r4.failure_reason.as_deref()), (ImageType::Stock, None));
    assert_eq!(b1.failure_reason.as_deref(), Some("b1 ✗"));
    for pair in reserved.windows(2) {
        assert!(pair[0].created_at <= pair[1].created_at, "created_at must follow reservation order");
    }

    let list = |source: Option<InstanceId>, state: Option<ImageState>| {
        let catalog = catalog.clone();
        async move {
            ok(
                catalog.list_images(&ImageFilter { source_instance_id: source, state, ..ImageFilter::default() }).await,
                "list",
            )
        }
    };
    let expect = |picked: &[&ImageRecord]| {
        let mut v: Vec<ImageRecord> = picked.iter().map(|r| (*r).clone()).collect();
        v.sort_by_key(|r| (r.created_at, r.id));
        v
    };
    let [a1, b1, a2, b2, a3] = &current;
    assert_eq!(list(None, None).await, expect(&[a1, b1, a2, b2, a3]), "all images, oldest first");
    assert_eq!(list(Some(a), None).await, expect(&[a1, a2, a3]), "filter by source instance");
    assert_eq!(list(Some(b), None).await, expect(&[b1, b2]), "filter by source instance");
    assert_eq!(list(None, Some(Ready)).await, expect(&[a1]), "filter by state");
    assert_eq!(list(None, Some(Creating)).await, expect(&[b2, a3]), "filter by state");
    assert_eq!(list(None, Some(Deleting)).await, expect(&[a2]), "filter by state");
    assert_eq!(list(Some(b), Some(Failed)).await, expect(&[b1]), "filter by source and state");
    assert!(list(Some(b), Some(Ready)).await.is_empty(), "filter by source and state");
    assert!(list(Some(InstanceId::new()), None).await.is_empty(), "unknown source instance");

    let unknown = ImageId::new();
    match catalog.get_image(unknown).await {
        Err(Error::ImageNotFound(id)) => assert_eq!(id, unknown),
        other => panic!("get of an unknown image: expected ImageNotFound, got {other:?}"),
    }
}

/// A deleted image is gone from `get` and every list, has no source password, and a retried
/// reservation of its operation returns its tombstone rather than a new image.
pub async fn deleted_images_are_gone<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    for via in [Ready, Failed] {
        let image = image_in(&*catalog, via, &format!("gone-{via}")).await;
        let deleting = ok(catalog.update_image(image.id, via, ImageUpdate::Deleting).await, "deleting");
        let filter =
            ImageFilter { source_instance_id: Some(image.source_instance_id), state: None, ..ImageFilter::default() };
        assert_eq!(ok(catalog.list_images(&filter).await, "list"), vec![deleting], "a deleting image is still listed");
        ok(catalog.update_image(image.id, Deleting, ImageUpdate::Deleted).await, "deleted");

        expect_err!(catalog.get_image(image.id).await, Error::ImageNotFound(_), "get of a deleted image");
        for filter in [
            ImageFilter::default(),
            filter.clone(),
            ImageFilter { source_instance_id: None, state: Some(Deleted), ..ImageFilter::default() },
            ImageFilter {
                source_instance_id: Some(image.source_instance_id),
                state: Some(Deleted),
                ..ImageFilter::default()
            },
        ] {
            let listed = ok(catalog.list_images(&filter).await, "list");
            assert!(listed.iter().all(|r| r.id != image.id), "deleted image listed with {filter:?}");
        }
        match catalog.image_source_password(image.id).await {
            Err(Error::ImageNotReady { id, state }) => assert_eq!((id, state.as_str()), (image.id, "deleted")),
            other => panic!("password of a deleted image: expected ImageNotReady, got {other:?}"),
        }
        let again = ok(catalog.reserve_image(image.operation_id, &new_image(InstanceId::new(), "x")).await, "retry");
        assert_eq!((again.id, again.state), (image.id, Deleted), "a retried reservation must not resurrect");
    }
}

/// The source password of a ready image round-trips exactly (quotes, backslashes, non-ASCII);
/// it is `ImageNotReady` before the image is ready or when it failed, and never in `Debug`.
pub async fn image_source_password_round_trips<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let image = image_in(&*catalog, Creating, "pw").await;
    match catalog.image_source_password(image.id).await {
        Err(Error::ImageNotReady { id, state }) => assert_eq!((id, state.as_str()), (image.id, "creating")),
        other => panic!("password of a creating image: expected ImageNotReady, got {other:?}"),
    }
    let ready = ok(catalog.update_image(image.id, Creating, ready_update(ODD_PASSWORD)).await, "ready");
    assert_eq!(ok(catalog.image_source_password(image.id).await, "pw").expose(), ODD_PASSWORD);
    assert!(!format!("{ready:?}").contains("ünïcødé"), "the image record shows its password");

    let other = image_in(&*catalog, Creating, "pw-other").await;
    ok(catalog.update_image(other.id, Creating, ready_update("second-password")).await, "ready");
    assert_eq!(ok(catalog.image_source_password(other.id).await, "pw").expose(), "second-password");
    assert_eq!(ok(catalog.image_source_password(image.id).await, "pw").expose(), ODD_PASSWORD);

    let failed = image_in(&*catalog, Failed, "pw-failed").await;
    match catalog.image_source_password(failed.id).await {
        Err(Error::ImageNotReady { state, .. }) => assert_eq!(state, "failed"),
        other => panic!("password of a failed image: expected ImageNotReady, got {other:?}"),
    }
    expect_err!(catalog.image_source_password(ImageId::new()).await, Error::ImageNotFound(_), "unknown image");
}
