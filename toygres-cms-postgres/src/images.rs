//! Image operations: each one statement (or two, to explain a lost compare-and-set).

use crate::codec::{image, json, limit, now, position, size_to_sql, to_json, IMAGE_COLUMNS};
use crate::db::Db;
use tokio_postgres::error::SqlState;
use toygres_core::crypto::image_record;
use toygres_core::envelope::WrappedKey;
use toygres_core::{
    Error, ImageFilter, ImageId, ImageRecord, ImageState, ImageUpdate, Labels, NewImage, OperationId, Password, Result,
};
use uuid::Uuid;

/// How many times [`Db::rewrap_image_key`] tries while the key keeps changing under it.
const REWRAP_ATTEMPTS: usize = 3;

impl Db {
    /// See [`toygres_core::CatalogStore::reserve_image`]. The image gets `new.id` when set (the
    /// pipeline binds its data key to it), else a random id; a retry of `operation` returns the
    /// first record, whatever id and key the retry carries.
    pub async fn reserve_image(&self, operation: OperationId, new: &NewImage) -> Result<ImageRecord> {
        let insert = format!(
            "INSERT INTO {{s}}.images (id, operation_id, name, description, source_instance_id, state, image_type, \
             created_at, updated_at, labels, format, request_digest, encryption, from_image) \
             VALUES ($1, $2, $3, $4, $5, 'creating', 'stock', $6, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (operation_id) DO NOTHING RETURNING {IMAGE_COLUMNS}"
        );
        let id = new.id.unwrap_or_default();
        let (op, source) = (operation.0, new.source_instance_id.0);
        let (labels, encryption) = (to_json(&new.labels)?, new.encryption.as_ref().map(to_json).transpose()?);
        let from_image = new.from_image.map(|i| i.0);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
            &id.0,
            &op,
            &new.name,
            &new.description,
            &source,
            &now(),
            &labels,
            &new.format.as_str(),
            &new.request_digest,
            &encryption,
            &from_image,
        ];
        // One pooled connection at a time: holding one while taking another can starve the pool.
        let inserted = {
            let client = self.client().await?;
            let statement = client.prepare_cached(&self.sql(&insert)).await.map_err(self.err("reserve an image"))?;
            client.query_opt(&statement, &params).await
        };
        let select = format!("SELECT {IMAGE_COLUMNS} FROM {{s}}.images WHERE operation_id = $1");
        match inserted {
            Ok(Some(row)) => return image(&row),
            Ok(None) => {}
            // The primary key refused the id: unless a concurrent retry of this very operation
            // (with the same id) won the race, another operation's image has it.
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                if self.query_opt("read a reserved image", &select, &[&op]).await?.is_none() {
                    return Err(Error::InvalidRequest {
                        field: "image id",
                        reason: format!("image {id} is already recorded for another operation; reserve under a new id"),
                    });
                }
            }
            Err(e) => return Err(self.err("reserve an image")(e)),
        }
        self.check_request_digest("images", operation, new.request_digest.as_ref()).await?;
        let row = self.query_opt("read a reserved image", &select, &[&op]).await?;
        image(&row.ok_or_else(|| Error::Corrupt(format!("operation {operation} reserved no image")))?)
    }

    /// See [`toygres_core::CatalogStore::get_image`].
    pub async fn get_image(&self, id: ImageId) -> Result<ImageRecord> {
        let sql = format!("SELECT {IMAGE_COLUMNS} FROM {{s}}.images WHERE id = $1 AND state <> 'deleted'");
        match self.query_opt("read an image", &sql, &[&id.0]).await? {
            Some(row) => image(&row),
            None => Err(Error::ImageNotFound(id)),
        }
    }

    /// See [`toygres_core::CatalogStore::list_images`].
    pub async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageRecord>> {
        let sql = format!(
            "SELECT {IMAGE_COLUMNS} FROM {{s}}.images WHERE state <> 'deleted' \
             AND ($1::uuid IS NULL OR source_instance_id = $1) AND ($2::text IS NULL OR state = $2) \
             AND ($3::text IS NULL OR name = $3) AND labels @> $4::jsonb \
             AND ($5::timestamptz IS NULL OR (created_at, id) > ($5, $6::uuid)) \
             ORDER BY created_at, id LIMIT $7"
        );
        let source: Option<Uuid> = filter.source_instance_id.map(|i| i.0);
        let state: Option<&str> = filter.state.map(|s| s.as_str());
        let (after, after_id) = position(filter.page_token.as_ref());
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
            [&source, &state, &filter.name, &to_json(&filter.labels)?, &after, &after_id, &limit(filter.limit)];
        self.query("list images", &sql, &params).await?.iter().map(image).collect()
    }

    /// See [`toygres_core::CatalogStore::set_image_labels`].
    pub async fn set_image_labels(&self, id: ImageId, labels: &Labels) -> Result<ImageRecord> {
        let sql = format!(
            "UPDATE {{s}}.images SET labels = $1 WHERE id = $2 AND state <> 'deleted' RETURNING {IMAGE_COLUMNS}"
        );
        match self.query_opt("set an image's labels", &sql, &[&to_json(labels)?, &id.0]).await? {
            Some(row) => image(&row),
            None => Err(Error::ImageNotFound(id)),
        }
    }

    /// See [`toygres_core::CatalogStore::update_image`]: `UPDATE … WHERE id = $ AND state = $`.
    pub async fn update_image(&self, id: ImageId, expected: ImageState, update: ImageUpdate) -> Result<ImageRecord> {
        let target = update.target_state();
        expected.check_transition(target)?;
        let c = update.columns();
        let size = c.size_bytes.map(size_to_sql).transpose()?;
        let sealed = c.source_password.map(|p| self.key.seal_for(p, &image_record(id)));
        let (checksum, pg_version, image_type, reason, erase) =
            (c.checksum, c.pg_version, c.image_type, c.failure_reason, c.erase_password);
        let sql = format!(
            "UPDATE {{s}}.images SET state = $1, updated_at = GREATEST(updated_at, $2), \
             size_bytes = COALESCE($3, size_bytes), checksum = COALESCE($4, checksum), \
             pg_version = COALESCE($5, pg_version), image_type = COALESCE($6, image_type), \
             failure_reason = COALESCE($7, failure_reason), \
             source_password = CASE WHEN $8 THEN NULL ELSE COALESCE($9, source_password) END, \
             metadata = COALESCE($12, metadata) WHERE id = $10 AND state = $11 RETURNING {IMAGE_COLUMNS}"
        );
        let metadata = c.metadata.map(to_json).transpose()?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 12] = [
            &target.as_str(),
            &now(),
            &size,
            &checksum,
            &pg_version,
            &image_type,
            &reason,
            &erase,
            &sealed,
            &id.0,
            &expected.as_str(),
            &metadata,
        ];
        if let Some(row) = self.query_opt("update an image", &sql, &params).await? {
            if target == ImageState::Deleted {
                self.clear_progress(toygres_core::Subject::Image(id)).await?;
            }
            return image(&row);
        }
        let row =
            self.query_opt("read an image's state", "SELECT state FROM {s}.images WHERE id = $1", &[&id.0]).await?;
        match row {
            None => Err(Error::ImageNotFound(id)),
            Some(row) => Err(Error::StateConflict {
                entity: "image",
                id: id.to_string(),
                expected: expected.to_string(),
                actual: row.get(0),
            }),
        }
    }

    /// See [`toygres_core::CatalogStore::rewrap_image_key`]: one
    /// `UPDATE … WHERE id = $ AND encryption = $expected`; when it changes nothing, the image's
    /// key is read to say why ([`WrappedKey::check_rewrap`]).
    pub async fn rewrap_image_key(&self, id: ImageId, expected: &WrappedKey, new: &WrappedKey) -> Result<ImageRecord> {
        let update = format!(
            "UPDATE {{s}}.images SET encryption = $3 WHERE id = $1 AND state <> 'deleted' AND encryption = $2 \
             RETURNING {IMAGE_COLUMNS}"
        );
        let read = "SELECT encryption FROM {s}.images WHERE id = $1 AND state <> 'deleted'";
        let (expected_json, new_json) = (to_json(expected)?, to_json(new)?);
        // A retry only when the key went from `expected` to another and back between the two
        // statements: each round trip either wins, or explains the loss.
        for _ in 0..REWRAP_ATTEMPTS {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&id.0, &expected_json, &new_json];
            if let Some(row) = self.query_opt("rewrap an image's key", &update, &params).await? {
                return image(&row);
            }
            let row = self.query_opt("read an image's key", read, &[&id.0]).await?.ok_or(Error::ImageNotFound(id))?;
            WrappedKey::check_rewrap(id, json::<WrappedKey>(&row, "encryption")?.as_ref(), expected)?;
        }
        Err(Error::StateConflict {
            entity: "image key",
            id: id.to_string(),
            expected: format!("wrapped under {}", expected.key_id),
            actual: "being rewrapped by another task".to_string(),
        })
    }

    /// See [`toygres_core::CatalogStore::image_source_password`].
    pub async fn image_source_password(&self, id: ImageId) -> Result<Password> {
        let sql = "SELECT state, source_password FROM {s}.images WHERE id = $1";
        let row = self.query_opt("read an image's source password", sql, &[&id.0]).await?;
        let row = row.ok_or(Error::ImageNotFound(id))?;
        match row.get::<_, Option<&[u8]>>(1) {
            Some(sealed) => self.key.open_for(sealed, &image_record(id)),
            None => Err(Error::ImageNotReady { id, state: row.get(0) }),
        }
    }
}
