//! Rows ↔ records: column lists, value conversions, and SQLite errors as toygres errors.

use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{ErrorCode, Row};
use std::str::FromStr;
use toygres_core::error::ErrorClass;
use toygres_core::{Error, ImageRecord, ImageType, InstanceRecord, NewImage, NewInstance, Password, Result};

/// Name of this backend in [`Error::Backend`].
pub const BACKEND: &str = "sqlite catalog";

/// Image columns in the order [`image_from_row`] reads them (never the password).
pub const IMAGE_COLUMNS: &str = "id, operation_id, name, description, source_instance_id, state, pg_version, \
     image_type, size_bytes, checksum, failure_reason, created_at, updated_at, labels, metadata, format, encryption, \
     from_image";

/// Instance columns in the order [`instance_from_row`] reads them (never the password).
pub const INSTANCE_COLUMNS: &str = "id, operation_id, name, dns_label, state, image_type, pg_version, \
     source_image_id, connection, failure_reason, created_at, updated_at, labels, databases, recovery, protection";

/// Now, in the microseconds since the epoch that the catalog stores.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// [`Error::OperationReused`] when `table`'s record of `operation` was made for a request whose
/// digest is not `digest` (either digest missing: nothing to compare).
pub fn check_request_digest(
    conn: &rusqlite::Connection,
    table: &str,
    operation: toygres_core::OperationId,
    digest: Option<&String>,
) -> Result<()> {
    use rusqlite::OptionalExtension;
    let Some(digest) = digest else { return Ok(()) };
    let sql = format!("SELECT request_digest FROM {table} WHERE operation_id = ?1");
    let kept: Option<Option<String>> =
        conn.query_row(&sql, [operation.to_string()], |r| r.get(0)).optional().ctx("read a request digest")?;
    toygres_core::catalog::check_request_digest(operation, kept.flatten().as_deref(), Some(digest))
}

/// Adds what the catalog was doing, and what to do about it, to a SQLite error.
pub trait Ctx<T> {
    /// Converts the error, saying it happened while doing `what`.
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| convert(what, e))
    }
}

fn convert(what: &str, e: rusqlite::Error) -> Error {
    if let rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) = e {
        return Error::Corrupt(format!(
            "cannot {what}: {e}; the catalog file was changed by something other than toygres"
        ));
    }
    let code = e.sqlite_error_code();
    let class = match code {
        Some(ErrorCode::PermissionDenied | ErrorCode::ReadOnly | ErrorCode::AuthorizationForStatementDenied) => {
            ErrorClass::Unauthorized
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => ErrorClass::Corrupt,
        Some(ErrorCode::ConstraintViolation) => ErrorClass::Conflict,
        _ => ErrorClass::Unavailable,
    };
    let hint = match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "another process held the catalog locked for longer than the busy timeout; retry, or raise the busy timeout"
        }
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
            "check that the file's directory exists and that the file and directory are writable by this process"
        }
        Some(ErrorCode::DiskFull) => "the disk is full; free space and retry",
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            "the file is not a SQLite catalog or is damaged; point toygres at the right file or restore it from a backup"
        }
        _ => "check the catalog file and retry",
    };
    Error::backend(BACKEND, format!("cannot {what}: {hint}"), e).with_class(class)
}

/// Parses a text column with `FromStr`, reporting a bad value as a conversion failure.
fn parse<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(index)?;
    text.parse().map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

fn parse_opt<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<T>>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match row.get::<_, Option<String>>(index)? {
        None => Ok(None),
        Some(_) => parse(row, index).map(Some),
    }
}

pub fn time(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let micros: i64 = row.get(index)?;
    DateTime::from_timestamp_micros(micros).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Integer,
            format!("timestamp {micros} out of range").into(),
        )
    })
}

/// A JSON text column as `T` (`None` when NULL).
pub fn json_opt<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<T>> {
    match row.get::<_, Option<String>>(index)? {
        None => Ok(None),
        Some(json) => serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e))),
    }
}

/// Labels (or any value) as the JSON text the catalog stores.
pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(format!("cannot encode a catalog value: {e}")))
}

/// An image from a row selected with [`IMAGE_COLUMNS`].
pub fn image_from_row(row: &Row<'_>) -> rusqlite::Result<ImageRecord> {
    let size: Option<i64> = row.get(8)?;
    let new = NewImage::new(row.get::<_, String>(2)?, parse(row, 4)?);
    let mut r = ImageRecord::reserved(parse(row, 0)?, parse(row, 1)?, &new, time(row, 11)?);
    r.description = row.get(3)?;
    r.state = parse(row, 5)?;
    r.pg_version = row.get(6)?;
    r.image_type = ImageType::from_catalog(&row.get::<_, String>(7)?);
    r.size_bytes = size.map(|s| s as u64);
    r.checksum = row.get(9)?;
    r.failure_reason = row.get(10)?;
    r.updated_at = time(row, 12)?;
    r.labels = json_opt(row, 13)?.unwrap_or_default();
    r.metadata = json_opt(row, 14)?;
    r.format = parse(row, 15)?;
    r.encryption = json_opt(row, 16)?;
    r.from_image = parse_opt(row, 17)?;
    Ok(r)
}

/// An instance from a row selected with [`INSTANCE_COLUMNS`].
pub fn instance_from_row(row: &Row<'_>) -> rusqlite::Result<InstanceRecord> {
    let mut new = NewInstance::existing(row.get::<_, String>(2)?, Password::new(""));
    new.dns_label = row.get(3)?;
    new.state = parse(row, 4)?;
    new.image_type = ImageType::from_catalog(&row.get::<_, String>(5)?);
    new.pg_version = row.get(6)?;
    new.source_image_id = parse_opt(row, 7)?;
    new.labels = json_opt(row, 12)?.unwrap_or_default();
    new.databases = json_opt(row, 13)?;
    new.recovery = json_opt(row, 14)?;
    let mut r = InstanceRecord::created(parse(row, 0)?, parse(row, 1)?, &new, time(row, 10)?);
    r.connection = json_opt(row, 8)?;
    r.failure_reason = row.get(9)?;
    r.updated_at = time(row, 11)?;
    r.protection = json_opt(row, 15)?;
    Ok(r)
}

/// Whether `e` is a unique constraint on `column` (`table.column`) refusing a row.
pub fn is_unique_violation(e: &rusqlite::Error, column: &str) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, Some(msg))
        if f.code == ErrorCode::ConstraintViolation && msg.contains(column))
}

/// `size_bytes` as SQLite's signed 64-bit integer.
pub fn size_to_sql(size: u64) -> Result<i64> {
    i64::try_from(size).map_err(|_| Error::InvalidRequest {
        field: "size_bytes",
        reason: format!("{size} is larger than the catalog can record ({})", i64::MAX),
    })
}
