//! Byte progress of the operation on an image or instance: one row per subject.

use crate::codec::{time, Ctx};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use toygres_core::{Error, Result, StoredProgress, Subject};

fn bytes(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::InvalidRequest {
        field: "progress",
        reason: format!("{value} bytes is more than the catalog can record ({})", i64::MAX),
    })
}

/// See [`toygres_core::CatalogStore::record_progress`]: in one `BEGIN IMMEDIATE` transaction,
/// the record is checked to be live and the row upserted.
pub fn record(conn: &mut Connection, subject: Subject, progress: &StoredProgress) -> Result<()> {
    let (done, total) = (bytes(progress.done)?, progress.total.map(bytes).transpose()?);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("start a transaction")?;
    let table = match subject {
        Subject::Image(_) => "images",
        Subject::Instance(_) => "instances",
    };
    let live = format!("SELECT 1 FROM {table} WHERE id = ?1 AND state <> 'deleted'");
    let found: Option<i64> =
        tx.query_row(&live, [subject.uuid().to_string()], |r| r.get(0)).optional().ctx("find a progress subject")?;
    if found.is_none() {
        return Err(match subject {
            Subject::Image(id) => Error::ImageNotFound(id),
            Subject::Instance(id) => Error::instance_not_found(id),
        });
    }
    tx.execute(
        "INSERT INTO progress (subject_kind, subject_id, phase, done, total, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (subject_kind, subject_id) DO UPDATE SET \
         phase = excluded.phase, done = excluded.done, total = excluded.total, updated_at = excluded.updated_at",
        params![
            subject.kind(),
            subject.uuid().to_string(),
            progress.phase.to_string(),
            done,
            total,
            progress.updated_at.timestamp_micros()
        ],
    )
    .ctx("record progress")?;
    tx.commit().ctx("commit the progress")
}

/// See [`toygres_core::CatalogStore::get_progress`].
pub fn get(conn: &mut Connection, subject: Subject) -> Result<Option<StoredProgress>> {
    conn.query_row(
        "SELECT phase, done, total, updated_at FROM progress WHERE subject_kind = ?1 AND subject_id = ?2",
        params![subject.kind(), subject.uuid().to_string()],
        |r| {
            let phase: String = r.get(0)?;
            let phase = phase
                .parse()
                .map_err(|e: Error| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, e.to_string().into()))?;
            let (done, total): (i64, Option<i64>) = (r.get(1)?, r.get(2)?);
            Ok(StoredProgress::new(phase, done.max(0) as u64, total.map(|t| t.max(0) as u64), time(r, 3)?))
        },
    )
    .optional()
    .ctx("read progress")
}

/// See [`toygres_core::CatalogStore::clear_progress`]; also run when a record is deleted.
pub fn remove(conn: &Connection, subject: Subject) -> Result<()> {
    conn.execute(
        "DELETE FROM progress WHERE subject_kind = ?1 AND subject_id = ?2",
        params![subject.kind(), subject.uuid().to_string()],
    )
    .ctx("remove progress")
    .map(|_| ())
}
