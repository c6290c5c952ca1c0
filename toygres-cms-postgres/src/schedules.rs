//! Schedule operations and byte progress: each one statement (or two, to explain a refusal).

use crate::codec::{now, progress, schedule, SCHEDULE_COLUMNS};
use crate::db::Db;
use chrono::{DateTime, Utc};
use tokio_postgres::error::SqlState;
use toygres_core::{Error, NewSchedule, OperationId, Result, Schedule, ScheduleId, StoredProgress, Subject};

impl Db {
    /// See [`toygres_core::CatalogStore::create_schedule`]: `INSERT … ON CONFLICT (operation_id)
    /// DO NOTHING`; the partial unique index on live names refuses a taken name.
    pub async fn create_schedule(&self, operation: OperationId, new: &NewSchedule) -> Result<Schedule> {
        let insert = format!(
            "INSERT INTO {{s}}.schedules (id, operation_id, name, instance_id, cron, format, keep_last, \
             keep_younger_than, request_digest, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (operation_id) DO NOTHING RETURNING {SCHEDULE_COLUMNS}"
        );
        let id = ScheduleId::new();
        let keep_last = i32::try_from(new.retention.keep_last).unwrap_or(i32::MAX);
        let keep_younger_than = new.retention.keep_younger_than.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
            &id.0,
            &operation.0,
            &new.name,
            &new.instance_id.0,
            &new.cron,
            &new.format.as_str(),
            &keep_last,
            &keep_younger_than,
            &new.request_digest,
            &now(),
        ];
        let inserted = {
            let client = self.client().await?;
            let statement = client.prepare_cached(&self.sql(&insert)).await.map_err(self.err("record a schedule"))?;
            client.query_opt(&statement, &params).await
        };
        match inserted {
            Ok(Some(row)) => return schedule(&row),
            Ok(None) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(Error::ScheduleNameTaken(new.name.clone()));
            }
            Err(e) => return Err(self.err("record a schedule")(e)),
        }
        self.check_request_digest("schedules", operation, new.request_digest.as_ref()).await?;
        let select = format!("SELECT {SCHEDULE_COLUMNS} FROM {{s}}.schedules WHERE operation_id = $1");
        let row = self.query_opt("read a schedule", &select, &[&operation.0]).await?;
        schedule(&row.ok_or_else(|| Error::Corrupt(format!("operation {operation} recorded no schedule")))?)
    }

    /// See [`toygres_core::CatalogStore::get_schedule`].
    pub async fn get_schedule(&self, id: ScheduleId) -> Result<Schedule> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM {{s}}.schedules WHERE id = $1 AND deleted_at IS NULL");
        match self.query_opt("read a schedule", &sql, &[&id.0]).await? {
            Some(row) => schedule(&row),
            None => Err(Error::ScheduleNotFound(id)),
        }
    }

    /// See [`toygres_core::CatalogStore::list_schedules`].
    pub async fn list_schedules(&self) -> Result<Vec<Schedule>> {
        let sql =
            format!("SELECT {SCHEDULE_COLUMNS} FROM {{s}}.schedules WHERE deleted_at IS NULL ORDER BY created_at, id");
        self.query("list schedules", &sql, &[]).await?.iter().map(schedule).collect()
    }

    /// See [`toygres_core::CatalogStore::delete_schedule`].
    pub async fn delete_schedule(&self, id: ScheduleId) -> Result<()> {
        let sql = "UPDATE {s}.schedules SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL RETURNING id";
        match self.query_opt("delete a schedule", sql, &[&id.0, &now()]).await? {
            Some(_) => Ok(()),
            None => Err(Error::ScheduleNotFound(id)),
        }
    }

    /// See [`toygres_core::CatalogStore::advance_schedule`]: one
    /// `UPDATE … WHERE last_slot IS NOT DISTINCT FROM $expected`.
    pub async fn advance_schedule(
        &self,
        id: ScheduleId,
        expected: Option<DateTime<Utc>>,
        new: DateTime<Utc>,
    ) -> Result<Schedule> {
        let sql = format!(
            "UPDATE {{s}}.schedules SET last_slot = $3 WHERE id = $1 AND deleted_at IS NULL \
             AND last_slot IS NOT DISTINCT FROM $2 RETURNING {SCHEDULE_COLUMNS}"
        );
        if let Some(row) = self.query_opt("advance a schedule", &sql, &[&id.0, &expected, &new]).await? {
            return schedule(&row);
        }
        let actual = self.get_schedule(id).await?;
        Err(toygres_core::catalog::schedule_conflict(id, expected, actual.last_slot))
    }

    /// See [`toygres_core::CatalogStore::record_progress`]: one upsert from the subject's row,
    /// locked `FOR SHARE`, so that it waits for a deletion in progress and then records nothing.
    pub async fn record_progress(&self, subject: Subject, p: &StoredProgress) -> Result<()> {
        let bytes = |value: u64| {
            i64::try_from(value).map_err(|_| Error::InvalidRequest {
                field: "progress",
                reason: format!("{value} bytes is more than the catalog can record ({})", i64::MAX),
            })
        };
        let (done, total) = (bytes(p.done)?, p.total.map(bytes).transpose()?);
        let table = match subject {
            Subject::Image(_) => "images",
            Subject::Instance(_) => "instances",
        };
        let sql = format!(
            "WITH live AS (SELECT id FROM {{s}}.{table} WHERE id = $2 AND state <> 'deleted' FOR SHARE) \
             INSERT INTO {{s}}.progress (subject_kind, subject_id, phase, done, total, updated_at) \
             SELECT $1, id, $3, $4, $5, $6 FROM live ON CONFLICT (subject_kind, subject_id) DO UPDATE SET \
             phase = excluded.phase, done = excluded.done, total = excluded.total, updated_at = excluded.updated_at \
             RETURNING subject_id"
        );
        let (kind, id, phase) = (subject.kind(), subject.uuid(), p.phase.to_string());
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
            [&kind, &id, &phase, &done, &total, &p.updated_at];
        match self.query_opt("record progress", &sql, &params).await? {
            Some(_) => Ok(()),
            None => Err(match subject {
                Subject::Image(id) => Error::ImageNotFound(id),
                Subject::Instance(id) => Error::instance_not_found(id),
            }),
        }
    }

    /// See [`toygres_core::CatalogStore::get_progress`].
    pub async fn get_progress(&self, subject: Subject) -> Result<Option<StoredProgress>> {
        let sql = "SELECT phase, done, total, updated_at FROM {s}.progress WHERE subject_kind = $1 AND subject_id = $2";
        let row = self.query_opt("read progress", sql, &[&subject.kind(), &subject.uuid()]).await?;
        row.as_ref().map(progress).transpose()
    }

    /// See [`toygres_core::CatalogStore::clear_progress`]; also run after a record is deleted
    /// (a statement of its own, so that it sees a record that committed while the deletion
    /// waited for its row).
    pub async fn clear_progress(&self, subject: Subject) -> Result<()> {
        let sql = "DELETE FROM {s}.progress WHERE subject_kind = $1 AND subject_id = $2 RETURNING subject_id";
        self.query("remove progress", sql, &[&subject.kind(), &subject.uuid()]).await.map(|_| ())
    }
}
