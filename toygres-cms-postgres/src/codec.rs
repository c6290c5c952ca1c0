//! Rows ↔ records.

use chrono::{DateTime, SubsecRound, Utc};
use tokio_postgres::Row;
use toygres_core::{ConnectionInfo, Error, ImageRecord, ImageType, InstanceRecord, Result};
use uuid::Uuid;

/// Image columns [`image`] reads (never the password).
pub const IMAGE_COLUMNS: &str = "id, operation_id, name, description, source_instance_id, state, pg_version, \
     image_type, size_bytes, checksum, failure_reason, created_at, updated_at, format";

/// Instance columns [`instance`] reads (never the password).
pub const INSTANCE_COLUMNS: &str = "id, operation_id, name, dns_label, state, image_type, pg_version, \
     source_image_id, connection, failure_reason, created_at, updated_at";

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
    Ok(ImageRecord {
        id: get::<Uuid>(row, "id")?.into(),
        operation_id: get::<Uuid>(row, "operation_id")?.into(),
        name: get(row, "name")?,
        description: get(row, "description")?,
        source_instance_id: get::<Uuid>(row, "source_instance_id")?.into(),
        state: state(row)?,
        pg_version: get(row, "pg_version")?,
        image_type: ImageType::from_catalog(get(row, "image_type")?),
        size_bytes: size.map(|s| s as u64),
        checksum: get(row, "checksum")?,
        failure_reason: get(row, "failure_reason")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        format: get::<&str>(row, "format")?.parse()?,
    })
}

/// An instance from a row with [`INSTANCE_COLUMNS`].
pub fn instance(row: &Row) -> Result<InstanceRecord> {
    let connection: Option<serde_json::Value> = get(row, "connection")?;
    let connection: Option<ConnectionInfo> = connection
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::Corrupt(format!("catalog column connection: {e}")))?;
    Ok(InstanceRecord {
        id: get::<Uuid>(row, "id")?.into(),
        operation_id: get::<Uuid>(row, "operation_id")?.into(),
        name: get(row, "name")?,
        dns_label: get(row, "dns_label")?,
        state: state(row)?,
        image_type: ImageType::from_catalog(get(row, "image_type")?),
        pg_version: get(row, "pg_version")?,
        source_image_id: get::<Option<Uuid>>(row, "source_image_id")?.map(Into::into),
        connection,
        failure_reason: get(row, "failure_reason")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

/// `size_bytes` as PostgreSQL's `bigint`.
pub fn size_to_sql(size: u64) -> Result<i64> {
    i64::try_from(size).map_err(|_| Error::InvalidRequest {
        field: "size_bytes",
        reason: format!("{size} is larger than the catalog can record ({})", i64::MAX),
    })
}
