//! Slot computation: the latest slot after the floor, missed slots, the creation boundary, and
//! deterministic operation ids and image requests.

use super::*;
use crate::error::Error;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn hourly(created: &str) -> Schedule {
    let request = CreateScheduleRequest::new("hourly", InstanceId::new(), "0 * * * *");
    Schedule::created(ScheduleId::new(), OperationId::new(), &request.to_new().unwrap(), at(created))
}

#[test]
fn the_latest_slot_after_the_floor_is_due() {
    let mut s = hourly("2026-12-05T10:20:00Z");
    assert_eq!(s.due_slot(at("2026-12-05T10:59:59Z")).unwrap(), None, "no slot since the creation");
    assert_eq!(s.due_slot(at("2026-12-05T11:00:00Z")).unwrap(), Some(at("2026-12-05T11:00:00Z")), "on the slot");
    assert_eq!(s.due_slot(at("2026-12-05T11:00:14Z")).unwrap(), Some(at("2026-12-05T11:00:00Z")), "a bit after");
    s.last_slot = Some(at("2026-12-05T11:00:00Z"));
    assert_eq!(s.due_slot(at("2026-12-05T11:59:00Z")).unwrap(), None, "taken");
    assert_eq!(s.due_slot(at("2026-12-05T12:00:05Z")).unwrap(), Some(at("2026-12-05T12:00:00Z")));
    assert_eq!(s.next_run_after(at("2026-12-05T11:30:00Z")), Some(at("2026-12-05T12:00:00Z")));
}

#[test]
fn after_downtime_only_the_most_recent_missed_slot_is_due() {
    let mut s = hourly("2026-12-01T00:30:00Z");
    s.last_slot = Some(at("2026-12-01T05:00:00Z"));
    // Down from 05:10 to 14:20: 06:00 … 14:00 were missed; only 14:00 is taken.
    assert_eq!(s.due_slot(at("2026-12-01T14:20:00Z")).unwrap(), Some(at("2026-12-01T14:00:00Z")));
    s.last_slot = Some(at("2026-12-01T14:00:00Z"));
    assert_eq!(s.due_slot(at("2026-12-01T14:40:00Z")).unwrap(), None, "the skipped ones never come back");
}

#[test]
fn a_slot_at_or_before_the_creation_is_never_due() {
    let s = hourly("2026-12-05T11:00:00Z");
    assert_eq!(s.due_slot(at("2026-12-05T11:00:30Z")).unwrap(), None, "the slot of the creation instant");
    assert_eq!(s.due_slot(at("2026-12-05T12:00:00Z")).unwrap(), Some(at("2026-12-05T12:00:00Z")));
    let mut older = hourly("2026-12-05T11:30:00Z");
    older.last_slot = Some(at("2026-12-05T09:00:00Z")); // a last slot before the creation (clock skew)
    assert_eq!(older.floor(), at("2026-12-05T11:30:00Z"));
    assert_eq!(older.due_slot(at("2026-12-05T11:59:00Z")).unwrap(), None);
}

#[test]
fn utc_slots_ignore_daylight_saving_time() {
    let request = CreateScheduleRequest::new("daily", InstanceId::new(), "30 1 * * *");
    let s = Schedule::created(
        ScheduleId::new(),
        OperationId::new(),
        &request.to_new().unwrap(),
        at("2026-03-28T12:00:00Z"),
    );
    // Europe's clocks go forward on 2026-03-29 at 01:00 UTC; UTC slots do not move.
    assert_eq!(s.due_slot(at("2026-03-29T01:30:00Z")).unwrap(), Some(at("2026-03-29T01:30:00Z")));
    assert_eq!(s.next_run_after(at("2026-03-29T01:30:00Z")), Some(at("2026-03-30T01:30:00Z")));
}

#[test]
fn operation_ids_and_requests_are_the_same_on_every_replica() {
    let s = hourly("2026-12-05T10:00:00Z");
    let slot = at("2026-12-05T11:00:00Z");
    assert_eq!(s.slot_operation(slot), s.clone().slot_operation(slot), "deterministic");
    assert_ne!(s.slot_operation(slot), s.slot_operation(at("2026-12-05T12:00:00Z")), "one per slot");
    assert_ne!(s.slot_operation(slot), hourly("2026-12-05T10:00:00Z").slot_operation(slot), "one per schedule");
    let request = s.image_request(slot);
    assert_eq!(request, s.image_request(slot));
    assert_eq!(request.name, "hourly-20261205t1100");
    assert_eq!(request.labels.get(SCHEDULE_LABEL), Some(&s.id.to_string()));
    assert_eq!(request.labels.get(SLOT_LABEL).map(String::as_str), Some("2026-12-05T11:00:00Z"));
    request.validate().expect("a scheduled image request is valid");
    let long = CreateScheduleRequest::new("a".repeat(MAX_SCHEDULE_NAME), InstanceId::new(), "0 * * * *");
    let long =
        Schedule::created(ScheduleId::new(), OperationId::new(), &long.to_new().unwrap(), at("2026-12-05T10:00:00Z"));
    long.image_request(slot).validate().expect("the longest name still makes a valid image name");
}

#[test]
fn requests_are_validated_field_by_field() {
    let instance = InstanceId::new();
    let ok = CreateScheduleRequest::new("nightly", instance, "0 3 * * *");
    assert_eq!(ok.to_new().unwrap().retention, ScheduleRetention::keep_last(DEFAULT_KEEP_LAST));
    let field = |r: CreateScheduleRequest| match r.validate() {
        Err(Error::InvalidRequest { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(CreateScheduleRequest::new("Bad", instance, "0 3 * * *")), "name");
    assert_eq!(field(CreateScheduleRequest::new("a".repeat(MAX_SCHEDULE_NAME + 1), instance, "0 3 * * *")), "name");
    assert_eq!(field(CreateScheduleRequest::new("n", instance, "every day")), "cron");
    assert_eq!(field(ok.clone().with_keep_last(0)), "keep_last");
    assert_eq!(field(ok.clone().with_keep_last(MAX_KEEP_LAST + 1)), "keep_last");
    let too_long = MAX_KEEP_YOUNGER_THAN + Duration::from_secs(1);
    assert_eq!(field(ok.clone().with_keep_younger_than(too_long)), "keep_younger_than");
    assert_ne!(ok.digest(), ok.clone().with_keep_last(3).digest());
    let json: CreateScheduleRequest =
        serde_json::from_value(serde_json::json!({ "name": "n", "instance_id": instance, "cron": "0 3 * * *" }))
            .unwrap();
    assert_eq!(json.keep_last, DEFAULT_KEEP_LAST);
}
