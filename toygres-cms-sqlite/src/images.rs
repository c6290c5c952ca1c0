//! Image operations, each one SQLite transaction on one connection.

use crate::codec::{
    check_request_digest, image_from_row, is_unique_violation, json_opt, now_micros, size_to_sql, to_json, Ctx,
    IMAGE_COLUMNS,
};
use crate::listing::Conditions;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use toygres_core::crypto::{image_record, CatalogKey};
use toygres_core::envelope::WrappedKey;
use toygres_core::{
    Error, ImageFilter, ImageId, ImageRecord, ImageState, ImageType, ImageUpdate, Labels, NewImage, OperationId,
    Password, Result, Subject,
};

fn by_id(conn: &Connection, id: ImageId) -> Result<Option<ImageRecord>> {
    let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = ?1");
    conn.query_row(&sql, [id.to_string()], image_from_row).optional().ctx("read an image")
}

/// See [`toygres_core::CatalogStore::reserve_image`]. The image gets `image.id` when set (the
/// pipeline binds its data key to it), else a random id; a retry of `operation` returns the
/// first record, whatever id and key the retry carries.
pub fn reserve(conn: &mut Connection, operation: OperationId, image: &NewImage) -> Result<ImageRecord> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("start a transaction")?;
    let by_operation = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE operation_id = ?1");
    let kept = tx.query_row(&by_operation, [operation.to_string()], image_from_row).optional();
    if let Some(record) = kept.ctx("read a reserved image")? {
        check_request_digest(&tx, "images", operation, image.request_digest.as_ref())?;
        return Ok(record);
    }
    let id = image.id.unwrap_or_default();
    let now = now_micros();
    let inserted = tx.execute(
        "INSERT INTO images (id, operation_id, name, description, source_instance_id, state, image_type, \
         created_at, updated_at, labels, format, request_digest, encryption, from_image) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'creating', ?6, ?7, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            id.to_string(),
            operation.to_string(),
            image.name,
            image.description,
            image.source_instance_id.to_string(),
            ImageType::Stock.as_str(),
            now,
            to_json(&image.labels)?,
            image.format.as_str(),
            image.request_digest,
            image.encryption.as_ref().map(to_json).transpose()?,
            image.from_image.map(|i| i.to_string())
        ],
    );
    match inserted {
        Err(e) if is_unique_violation(&e, "images.id") => return Err(id_taken(id)),
        other => other.ctx("reserve an image")?,
    };
    let record = by_id(&tx, id)?.ok_or(Error::ImageNotFound(id))?;
    tx.commit().ctx("commit the reservation")?;
    Ok(record)
}

/// The id a new image asked for already belongs to an image of another operation.
fn id_taken(id: ImageId) -> Error {
    Error::InvalidRequest {
        field: "image id",
        reason: format!("image {id} is already recorded for another operation; reserve under a new id"),
    }
}

/// See [`toygres_core::CatalogStore::get_image`].
pub fn get(conn: &mut Connection, id: ImageId) -> Result<ImageRecord> {
    match by_id(conn, id)? {
        Some(record) if record.state != ImageState::Deleted => Ok(record),
        _ => Err(Error::ImageNotFound(id)),
    }
}

/// See [`toygres_core::CatalogStore::list_images`].
pub fn list(conn: &mut Connection, filter: &ImageFilter) -> Result<Vec<ImageRecord>> {
    let mut q = Conditions::new("images");
    q.eq("source_instance_id", filter.source_instance_id.map(|i| i.to_string()));
    q.eq("state", filter.state.map(|s| s.as_str().to_string()));
    q.eq("name", filter.name.clone());
    q.labels(&filter.labels)?;
    q.after(filter.page_token.as_ref());
    let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE {}", q.finish(filter.limit));
    let mut stmt = conn.prepare_cached(&sql).ctx("prepare the image list")?;
    let rows = stmt.query_map(rusqlite::params_from_iter(q.values()), image_from_row).ctx("list images")?;
    rows.collect::<rusqlite::Result<Vec<_>>>().ctx("read the image list")
}

/// See [`toygres_core::CatalogStore::set_image_labels`].
pub fn set_labels(conn: &mut Connection, id: ImageId, labels: &Labels) -> Result<ImageRecord> {
    let changed = conn
        .execute(
            "UPDATE images SET labels = ?1 WHERE id = ?2 AND state <> 'deleted'",
            params![to_json(labels)?, id.to_string()],
        )
        .ctx("set an image's labels")?;
    if changed == 0 {
        return Err(Error::ImageNotFound(id));
    }
    get(conn, id)
}

/// See [`toygres_core::CatalogStore::update_image`]: one `UPDATE … WHERE id = ? AND state = ?`.
pub fn update(
    conn: &mut Connection,
    key: &CatalogKey,
    id: ImageId,
    expected: ImageState,
    update: ImageUpdate,
) -> Result<ImageRecord> {
    let target = update.target_state();
    expected.check_transition(target)?;
    let c = update.columns();
    let size = c.size_bytes.map(size_to_sql).transpose()?;
    let sealed = c.source_password.map(|p| key.seal_for(p, &image_record(id)));
    let metadata = c.metadata.map(to_json).transpose()?;
    let (checksum, pg_version, image_type, reason, erase) =
        (c.checksum, c.pg_version, c.image_type, c.failure_reason, c.erase_password);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("start a transaction")?;
    let changed = tx
        .execute(
            "UPDATE images SET state = ?1, updated_at = MAX(updated_at, ?2), \
             size_bytes = COALESCE(?3, size_bytes), checksum = COALESCE(?4, checksum), \
             pg_version = COALESCE(?5, pg_version), image_type = COALESCE(?6, image_type), \
             failure_reason = COALESCE(?7, failure_reason), \
             source_password = CASE WHEN ?8 THEN NULL ELSE COALESCE(?9, source_password) END, \
             metadata = COALESCE(?12, metadata) WHERE id = ?10 AND state = ?11",
            params![
                target.as_str(),
                now_micros(),
                size,
                checksum,
                pg_version,
                image_type,
                reason,
                erase,
                sealed,
                id.to_string(),
                expected.as_str(),
                metadata
            ],
        )
        .ctx("update an image")?;
    let record = by_id(&tx, id)?.ok_or(Error::ImageNotFound(id))?;
    if changed == 0 {
        return Err(Error::StateConflict {
            entity: "image",
            id: id.to_string(),
            expected: expected.to_string(),
            actual: record.state.to_string(),
        });
    }
    if target == ImageState::Deleted {
        crate::progress::remove(&tx, Subject::Image(id))?;
    }
    tx.commit().ctx("commit the image update")?;
    Ok(record)
}

/// See [`toygres_core::CatalogStore::image_source_password`].
pub fn source_password(conn: &mut Connection, key: &CatalogKey, id: ImageId) -> Result<Password> {
    let row: Option<(String, Option<Vec<u8>>)> = conn
        .query_row("SELECT state, source_password FROM images WHERE id = ?1", [id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .ctx("read an image's source password")?;
    match row {
        None => Err(Error::ImageNotFound(id)),
        Some((state, None)) => Err(Error::ImageNotReady { id, state }),
        Some((_, Some(sealed))) => key.open_for(&sealed, &image_record(id)),
    }
}

/// See [`toygres_core::CatalogStore::rewrap_image_key`]: in one `BEGIN IMMEDIATE` transaction,
/// the key is read, checked with [`WrappedKey::check_rewrap`] and replaced.
pub fn rewrap_key(conn: &mut Connection, id: ImageId, expected: &WrappedKey, new: &WrappedKey) -> Result<ImageRecord> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("start a transaction")?;
    let current: Option<Option<WrappedKey>> = tx
        .query_row("SELECT encryption FROM images WHERE id = ?1 AND state <> 'deleted'", [id.to_string()], |r| {
            json_opt(r, 0)
        })
        .optional()
        .ctx("read an image's key")?;
    let current = current.ok_or(Error::ImageNotFound(id))?;
    WrappedKey::check_rewrap(id, current.as_ref(), expected)?;
    tx.execute("UPDATE images SET encryption = ?1 WHERE id = ?2", params![to_json(new)?, id.to_string()])
        .ctx("rewrap an image's key")?;
    let record = by_id(&tx, id)?.ok_or(Error::ImageNotFound(id))?;
    tx.commit().ctx("commit the rewrap")?;
    Ok(record)
}
