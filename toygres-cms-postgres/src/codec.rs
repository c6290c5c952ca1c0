//! Rows ↔ records.

use chrono::{DateTime, SubsecRound, Utc};
use tokio_postgres::Row;
use toygres_core::{
    ConnectionInfo, Error, ImageRecord, ImageType, InstanceRecord, NewImage, NewInstance, NewSchedule, PageToken,
    Password, Result, Schedule, ScheduleRetention, StoredProgress,
};
use uuid::Uuid;

/// Image columns [`image`] reads (never the password).
pub const IMAGE_COLUMNS: &str = "id, operation_id, name, description, source_instance_id, state, pg_version, \
     image_type, size_bytes, checksum, failure_reason, created_at, updated_at, labels, metadata, format, encryption, \
     from_image";

/// Instance columns [`instance`] reads (never the password).
pub const INSTANCE_COLUMNS: &str = "id, operation_id, name, dns_label, state, image_type, pg_version, \
     source_image_id, connection, failure_reason, created_at, updated_at, labels, databases, recovery, protection";

/// Schedule columns [`schedule`] reads.
pub const SCHEDULE_COLUMNS: &str =
    "id, operation_id, name, instance_id, cron, format, keep_last, keep_younger_than, last_slot, created_at, deleted_at";

/// Now, at the microsecond precision `timestamptz` keeps, so records read back equal records written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, column: &str) -> Result<T> {
    row.try_get(column).map_err(|e| Error::Corrupt(format!("catalog column {column}: {e}")))
}

fn state<T: std::str::FromStr<Err = Error>>(row: &Row) -> Result<T> {
    get::<&str>(row, "state")?.parse()
}

/// An image from a row with [`IMAGE_COLUMNS`].
pub fn image(row: &Row) -> Result<ImageRecord> {
    let size: Option<i64> = get(row, "size_bytes")?;
    let new = NewImage::new(get::<String>(row, "name")?, get::<Uuid>(row, "source_instance_id")?.into());
    let mut r = ImageRecord::reserved(
        get::<Uuid>(row, "id")?.into(),
        get::<Uuid>(row, "operation_id")?.into(),
        &new,
        get(row, "created_at")?,
    );
    r.description = get(row, "description")?;
    r.state = state(row)?;
    r.pg_version = get(row, "pg_version")?;
    r.image_type = ImageType::from_catalog(get(row, "image_type")?);
    r.size_bytes = size.map(|s| s as u64);
    r.checksum = get(row, "checksum")?;
    r.failure_reason = get(row, "failure_reason")?;
    r.updated_at = get(row, "updated_at")?;
    r.labels = json(row, "labels")?.unwrap_or_default();
    r.metadata = json(row, "metadata")?;
    r.format = get::<&str>(row, "format")?.parse()?;
    r.encryption = json(row, "encryption")?;
    r.from_image = get::<Option<Uuid>>(row, "from_image")?.map(Into::into);
    Ok(r)
}

/// A `jsonb` column as `T` (`None` when NULL).
pub fn json<T: serde::de::DeserializeOwned>(row: &Row, column: &str) -> Result<Option<T>> {
    let value: Option<serde_json::Value> = get(row, column)?;
    value.map(serde_json::from_value).transpose().map_err(|e| Error::Corrupt(format!("catalog column {column}: {e}")))
}

/// A value as the `jsonb` the catalog stores.
pub fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::Corrupt(format!("cannot encode a catalog value: {e}")))
}

/// An instance from a row with [`INSTANCE_COLUMNS`].
pub fn instance(row: &Row) -> Result<InstanceRecord> {
    let mut new = NewInstance::existing(get::<String>(row, "name")?, Password::new(""));
    new.dns_label = get(row, "dns_label")?;
    new.state = state(row)?;
    new.image_type = ImageType::from_catalog(get(row, "image_type")?);
    new.pg_version = get(row, "pg_version")?;
    new.source_image_id = get::<Option<Uuid>>(row, "source_image_id")?.map(Into::into);
    new.labels = json(row, "labels")?.unwrap_or_default();
    new.databases = json(row, "databases")?;
    new.recovery = json(row, "recovery")?;
    let id = get::<Uuid>(row, "id")?.into();
    let mut r = InstanceRecord::created(id, get::<Uuid>(row, "operation_id")?.into(), &new, get(row, "created_at")?);
    r.connection = json::<ConnectionInfo>(row, "connection")?;
    r.failure_reason = get(row, "failure_reason")?;
    r.updated_at = get(row, "updated_at")?;
    r.protection = json(row, "protection")?;
    Ok(r)
}

/// A schedule from a row with [`SCHEDULE_COLUMNS`].
pub fn schedule(row: &Row) -> Result<Schedule> {
    let keep_last: i32 = get(row, "keep_last")?;
    let keep_last = u32::try_from(keep_last).map_err(|e| Error::Corrupt(format!("catalog column keep_last: {e}")))?;
    let mut retention = ScheduleRetention::keep_last(keep_last);
    retention.keep_younger_than =
        get::<Option<i64>>(row, "keep_younger_than")?.map(|s| std::time::Duration::from_secs(s.max(0) as u64));
    let instance: Uuid = get(row, "instance_id")?;
    let mut new = NewSchedule::unchecked(get::<String>(row, "name")?, instance.into(), get::<String>(row, "cron")?);
    new.format = get::<&str>(row, "format")?.parse()?;
    new.retention = retention;
    let (id, operation): (Uuid, Uuid) = (get(row, "id")?, get(row, "operation_id")?);
    let mut r = Schedule::created(id.into(), operation.into(), &new, get(row, "created_at")?);
    r.last_slot = get(row, "last_slot")?;
    r.deleted_at = get(row, "deleted_at")?;
    Ok(r)
}

/// Byte progress from a row of `phase, done, total, updated_at`.
pub fn progress(row: &Row) -> Result<StoredProgress> {
    let (done, total): (i64, Option<i64>) = (get(row, "done")?, get(row, "total")?);
    let phase = get::<&str>(row, "phase")?.parse()?;
    Ok(StoredProgress::new(phase, done.max(0) as u64, total.map(|t| t.max(0) as u64), get(row, "updated_at")?))
}

/// `size_bytes` as PostgreSQL's `bigint`.
pub fn size_to_sql(size: u64) -> Result<i64> {
    i64::try_from(size).map_err(|_| Error::InvalidRequest {
        field: "size_bytes",
        reason: format!("{size} is larger than the catalog can record ({})", i64::MAX),
    })
}

/// The page token's position as SQL parameters: `(created_at, id)`, both `NULL` without one.
pub fn position(token: Option<&PageToken>) -> (Option<DateTime<Utc>>, Option<Uuid>) {
    (token.map(PageToken::created_at), token.map(|t| t.id))
}

/// A limit as SQL's `LIMIT` parameter (`NULL`: none).
pub fn limit(limit: Option<usize>) -> Option<i64> {
    limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX))
}
