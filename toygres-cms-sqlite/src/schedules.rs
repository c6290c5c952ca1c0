//! Schedule operations, each one SQLite statement or transaction on one connection.

use crate::codec::{check_request_digest, is_unique_violation, now_micros, time, Ctx};
use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::time::Duration;
use toygres_core::schedule::{NewSchedule, Schedule, ScheduleRetention};
use toygres_core::{Error, OperationId, Result, ScheduleId};

/// Schedule columns in the order [`schedule_from_row`] reads them.
const COLUMNS: &str =
    "id, operation_id, name, instance_id, cron, format, keep_last, keep_younger_than, last_slot, created_at, deleted_at";

fn text<T: std::str::FromStr>(row: &Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    let value: String = row.get(index)?;
    value
        .parse()
        .map_err(|e: T::Err| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, e.to_string().into()))
}

fn optional_time(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<i64>>(index)? {
        None => Ok(None),
        Some(_) => time(row, index).map(Some),
    }
}

fn schedule_from_row(row: &Row<'_>) -> rusqlite::Result<Schedule> {
    let keep_last: i64 = row.get(6)?;
    let keep_last = u32::try_from(keep_last)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(6, Type::Integer, Box::new(e)))?;
    let keep_younger_than = row.get::<_, Option<i64>>(7)?.map(|s| Duration::from_secs(s.max(0) as u64));
    let mut retention = ScheduleRetention::keep_last(keep_last);
    retention.keep_younger_than = keep_younger_than;
    let mut new = NewSchedule::unchecked(row.get::<_, String>(2)?, text(row, 3)?, row.get::<_, String>(4)?);
    new.format = text(row, 5)?;
    new.retention = retention;
    let mut schedule = Schedule::created(text(row, 0)?, text(row, 1)?, &new, time(row, 9)?);
    schedule.last_slot = optional_time(row, 8)?;
    schedule.deleted_at = optional_time(row, 10)?;
    Ok(schedule)
}

fn by(conn: &Connection, column: &str, value: String) -> Result<Option<Schedule>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules WHERE {column} = ?1");
    conn.query_row(&sql, [value], schedule_from_row).optional().ctx("read a schedule")
}

/// See [`toygres_core::CatalogStore::create_schedule`].
pub fn create(conn: &mut Connection, operation: OperationId, new: &NewSchedule) -> Result<Schedule> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("start a transaction")?;
    if let Some(existing) = by(&tx, "operation_id", operation.to_string())? {
        check_request_digest(&tx, "schedules", operation, new.request_digest.as_ref())?;
        return Ok(existing);
    }
    let id = ScheduleId::new();
    let keep_younger_than = new.retention.keep_younger_than.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let inserted = tx.execute(
        "INSERT INTO schedules (id, operation_id, name, instance_id, cron, format, keep_last, keep_younger_than, \
         request_digest, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id.to_string(),
            operation.to_string(),
            new.name,
            new.instance_id.to_string(),
            new.cron,
            new.format.as_str(),
            new.retention.keep_last,
            keep_younger_than,
            new.request_digest,
            now_micros()
        ],
    );
    match inserted {
        Err(e) if is_unique_violation(&e, "schedules.name") => return Err(Error::ScheduleNameTaken(new.name.clone())),
        other => other.ctx("record a schedule")?,
    };
    let record = by(&tx, "id", id.to_string())?.ok_or(Error::ScheduleNotFound(id))?;
    tx.commit().ctx("commit the schedule")?;
    Ok(record)
}

/// See [`toygres_core::CatalogStore::get_schedule`].
pub fn get(conn: &mut Connection, id: ScheduleId) -> Result<Schedule> {
    match by(conn, "id", id.to_string())? {
        Some(schedule) if schedule.deleted_at.is_none() => Ok(schedule),
        _ => Err(Error::ScheduleNotFound(id)),
    }
}

/// See [`toygres_core::CatalogStore::list_schedules`].
pub fn list(conn: &mut Connection) -> Result<Vec<Schedule>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules WHERE deleted_at IS NULL ORDER BY created_at, id");
    let mut stmt = conn.prepare_cached(&sql).ctx("prepare the schedule list")?;
    let rows = stmt.query_map([], schedule_from_row).ctx("list schedules")?;
    rows.collect::<rusqlite::Result<Vec<_>>>().ctx("read the schedule list")
}

/// See [`toygres_core::CatalogStore::delete_schedule`].
pub fn delete(conn: &mut Connection, id: ScheduleId) -> Result<()> {
    let changed = conn
        .execute(
            "UPDATE schedules SET deleted_at = ?1 WHERE id = ?2 AND deleted_at IS NULL",
            params![now_micros(), id.to_string()],
        )
        .ctx("delete a schedule")?;
    if changed == 0 {
        return Err(Error::ScheduleNotFound(id));
    }
    Ok(())
}

/// See [`toygres_core::CatalogStore::advance_schedule`]: one `UPDATE … WHERE last_slot IS ?`.
pub fn advance(
    conn: &mut Connection,
    id: ScheduleId,
    expected: Option<DateTime<Utc>>,
    new: DateTime<Utc>,
) -> Result<Schedule> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("start a transaction")?;
    let changed = tx
        .execute(
            "UPDATE schedules SET last_slot = ?1 WHERE id = ?2 AND deleted_at IS NULL AND last_slot IS ?3",
            params![new.timestamp_micros(), id.to_string(), expected.map(|e| e.timestamp_micros())],
        )
        .ctx("advance a schedule")?;
    let record = match by(&tx, "id", id.to_string())? {
        Some(record) if record.deleted_at.is_none() => record,
        _ => return Err(Error::ScheduleNotFound(id)),
    };
    if changed == 0 {
        return Err(toygres_core::catalog::schedule_conflict(id, expected, record.last_slot));
    }
    tx.commit().ctx("commit the schedule's slot")?;
    Ok(record)
}
