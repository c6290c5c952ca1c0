//! Instance operations, each one SQLite transaction on one connection.

use crate::codec::{check_request_digest, instance_from_row, now_micros, to_json, Ctx, INSTANCE_COLUMNS};
use crate::listing::Conditions;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use toygres_core::crypto::{instance_record, CatalogKey};
use toygres_core::wal::Protection;
use toygres_core::{
    Error, InstanceFilter, InstanceId, InstanceRecord, InstanceState, InstanceUpdate, Labels, NewInstance, OperationId,
    Password, Result, Subject,
};

fn select(conn: &Connection, filter: &str, value: &str) -> Result<Option<InstanceRecord>> {
    let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE {filter}");
    conn.query_row(&sql, [value], instance_from_row).optional().ctx("read an instance")
}

/// See [`toygres_core::CatalogStore::create_instance`].
pub fn create(
    conn: &mut Connection,
    key: &CatalogKey,
    operation: OperationId,
    new: &NewInstance,
) -> Result<InstanceRecord> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("start a transaction")?;
    if let Some(existing) = select(&tx, "operation_id = ?1", &operation.to_string())? {
        check_request_digest(&tx, "instances", operation, new.request_digest.as_ref())?;
        return Ok(existing);
    }
    let id = InstanceId::new();
    let inserted = tx.execute(
        "INSERT INTO instances (id, operation_id, name, dns_label, state, image_type, pg_version, \
         source_image_id, password, created_at, updated_at, labels, databases, request_digest, recovery) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13, ?14)",
        params![
            id.to_string(),
            operation.to_string(),
            new.name,
            new.dns_label,
            new.state.as_str(),
            new.image_type.as_str(),
            new.pg_version,
            new.source_image_id.map(|i| i.to_string()),
            key.seal_for(&new.password, &instance_record(id)),
            now_micros(),
            to_json(&new.labels)?,
            new.databases.as_ref().map(to_json).transpose()?,
            new.request_digest,
            new.recovery.as_ref().map(to_json).transpose()?
        ],
    );
    match inserted {
        Err(e) if is_live_name_violation(&e) => return Err(Error::NameTaken(new.name.clone())),
        other => other.ctx("create an instance")?,
    };
    let record = select(&tx, "id = ?1", &id.to_string())?.ok_or_else(|| Error::instance_not_found(id))?;
    tx.commit().ctx("commit the new instance")?;
    Ok(record)
}

/// Whether `e` is the unique index on live instance names refusing a second one.
fn is_live_name_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, Some(msg))
        if f.code == ErrorCode::ConstraintViolation && msg.contains("instances.name"))
}

/// See [`toygres_core::CatalogStore::get_instance`].
/// See [`toygres_core::CatalogStore::get_instance_including_deleted`].
pub fn get_including_deleted(conn: &mut Connection, id: InstanceId) -> Result<InstanceRecord> {
    select(conn, "id = ?1", &id.to_string())?.ok_or_else(|| Error::instance_not_found(id))
}

pub fn get(conn: &mut Connection, id: InstanceId) -> Result<InstanceRecord> {
    select(conn, "id = ?1 AND state <> 'deleted'", &id.to_string())?.ok_or_else(|| Error::instance_not_found(id))
}

/// See [`toygres_core::CatalogStore::get_instance_by_name`].
pub fn get_by_name(conn: &mut Connection, name: &str) -> Result<InstanceRecord> {
    select(conn, "name = ?1 AND state <> 'deleted'", name)?.ok_or_else(|| Error::InstanceNotFound(name.to_string()))
}

/// See [`toygres_core::CatalogStore::list_instances`].
pub fn list(conn: &mut Connection, filter: &InstanceFilter) -> Result<Vec<InstanceRecord>> {
    let mut q = Conditions::new("instances");
    q.eq("source_image_id", filter.source_image_id.map(|i| i.to_string()));
    q.eq("state", filter.state.map(|s| s.as_str().to_string()));
    q.eq("name", filter.name.clone());
    q.labels(&filter.labels)?;
    q.after(filter.page_token.as_ref());
    let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE {}", q.finish(filter.limit));
    let mut stmt = conn.prepare_cached(&sql).ctx("prepare the instance list")?;
    let rows = stmt.query_map(rusqlite::params_from_iter(q.values()), instance_from_row).ctx("list instances")?;
    rows.collect::<rusqlite::Result<Vec<_>>>().ctx("read the instance list")
}

/// See [`toygres_core::CatalogStore::set_instance_labels`].
pub fn set_labels(conn: &mut Connection, id: InstanceId, labels: &Labels) -> Result<InstanceRecord> {
    let changed = conn
        .execute(
            "UPDATE instances SET labels = ?1 WHERE id = ?2 AND state <> 'deleted'",
            params![to_json(labels)?, id.to_string()],
        )
        .ctx("set an instance's labels")?;
    if changed == 0 {
        return Err(Error::instance_not_found(id));
    }
    get(conn, id)
}

/// See [`toygres_core::CatalogStore::update_instance`]: one `UPDATE … WHERE id = ? AND state = ?`.
pub fn update(
    conn: &mut Connection,
    id: InstanceId,
    expected: InstanceState,
    update: InstanceUpdate,
) -> Result<InstanceRecord> {
    let target = update.target_state();
    expected.check_transition(target)?;
    let c = update.columns();
    let connection = c.connection.map(serde_json::to_string).transpose().map_err(|e| Error::Corrupt(e.to_string()))?;
    let (reason, erase, version) = (c.failure_reason, c.erase_password, c.pg_version);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("start a transaction")?;
    let changed = tx
        .execute(
            "UPDATE instances SET state = ?1, updated_at = MAX(updated_at, ?2), \
             connection = COALESCE(?3, connection), failure_reason = COALESCE(?4, failure_reason), \
             password = CASE WHEN ?5 THEN NULL ELSE password END, pg_version = COALESCE(?8, pg_version) \
             WHERE id = ?6 AND state = ?7",
            params![
                target.as_str(),
                now_micros(),
                connection,
                reason,
                erase,
                id.to_string(),
                expected.as_str(),
                version
            ],
        )
        .ctx("update an instance")?;
    let record = select(&tx, "id = ?1", &id.to_string())?.ok_or_else(|| Error::instance_not_found(id))?;
    if changed == 0 {
        return Err(Error::StateConflict {
            entity: "instance",
            id: id.to_string(),
            expected: expected.to_string(),
            actual: record.state.to_string(),
        });
    }
    if target == InstanceState::Deleted {
        crate::progress::remove(&tx, Subject::Instance(id))?;
    }
    tx.commit().ctx("commit the instance update")?;
    Ok(record)
}

/// See [`toygres_core::CatalogStore::set_instance_protection`]: in any state, deleted included.
pub fn set_protection(
    conn: &mut Connection,
    id: InstanceId,
    protection: Option<&Protection>,
) -> Result<InstanceRecord> {
    let protection = protection.map(to_json).transpose()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("start a transaction")?;
    let changed = tx
        .execute(
            "UPDATE instances SET protection = ?1, updated_at = MAX(updated_at, ?2) WHERE id = ?3",
            params![protection, now_micros(), id.to_string()],
        )
        .ctx("set an instance's protection")?;
    if changed == 0 {
        return Err(Error::instance_not_found(id));
    }
    let record = select(&tx, "id = ?1", &id.to_string())?.ok_or_else(|| Error::instance_not_found(id))?;
    tx.commit().ctx("commit the instance's protection")?;
    Ok(record)
}

/// See [`toygres_core::CatalogStore::instance_password`].
pub fn password(conn: &mut Connection, key: &CatalogKey, id: InstanceId) -> Result<Password> {
    let sealed: Option<Option<Vec<u8>>> = conn
        .query_row("SELECT password FROM instances WHERE id = ?1 AND state <> 'deleted'", [id.to_string()], |r| {
            r.get(0)
        })
        .optional()
        .ctx("read an instance's password")?;
    match sealed.flatten() {
        Some(sealed) => key.open_for(&sealed, &instance_record(id)),
        None => Err(Error::instance_not_found(id)),
    }
}
