//! Image operations: each one statement (or two, to explain a lost compare-and-set).

use crate::codec::{image, limit, now, position, size_to_sql, to_json, IMAGE_COLUMNS};
use crate::db::Db;
use toygres_core::{
    Error, ImageFilter, ImageId, ImageRecord, ImageState, ImageUpdate, Labels, NewImage, OperationId, Password, Result,
};
use uuid::Uuid;

impl Db {
    /// See [`toygres_core::CatalogStore::reserve_image`].
    pub async fn reserve_image(&self, operation: OperationId, new: &NewImage) -> Result<ImageRecord> {
        let insert = format!(
            "INSERT INTO {{s}}.images (id, operation_id, name, description, source_instance_id, state, image_type, \
             created_at, updated_at, labels, format, request_digest) \
             VALUES ($1, $2, $3, $4, $5, 'creating', 'stock', $6, $6, $7, $8, $9) \
             ON CONFLICT (operation_id) DO NOTHING RETURNING {IMAGE_COLUMNS}"
        );
        let (id, op, source) = (ImageId::new().0, operation.0, new.source_instance_id.0);
        let labels = to_json(&new.labels)?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
            &id,
            &op,
            &new.name,
            &new.description,
            &source,
            &now(),
            &labels,
            &new.format.as_str(),
            &new.request_digest,
        ];
        if let Some(row) = self.query_opt("reserve an image", &insert, &params).await? {
            return image(&row);
        }
        self.check_request_digest("images", operation, new.request_digest.as_ref()).await?;
        let select = format!("SELECT {IMAGE_COLUMNS} FROM {{s}}.images WHERE operation_id = $1");
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
        let sealed = c.source_password.map(|p| self.key.seal(p));
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

    /// See [`toygres_core::CatalogStore::image_source_password`].
    pub async fn image_source_password(&self, id: ImageId) -> Result<Password> {
        let sql = "SELECT state, source_password FROM {s}.images WHERE id = $1";
        let row = self.query_opt("read an image's source password", sql, &[&id.0]).await?;
        let row = row.ok_or(Error::ImageNotFound(id))?;
        match row.get::<_, Option<&[u8]>>(1) {
            Some(sealed) => self.key.open(sealed),
            None => Err(Error::ImageNotReady { id, state: row.get(0) }),
        }
    }
}
