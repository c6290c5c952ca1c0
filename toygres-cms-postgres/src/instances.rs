//! Instance operations: each one statement (or two, to explain a refusal).

use crate::codec::{instance, limit, now, position, to_json, INSTANCE_COLUMNS};
use crate::db::Db;
use tokio_postgres::error::SqlState;
use toygres_core::crypto::instance_record;
use toygres_core::wal::Protection;
use toygres_core::{
    Error, InstanceFilter, InstanceId, InstanceRecord, InstanceState, InstanceUpdate, Labels, NewInstance, OperationId,
    Password, Result,
};

impl Db {
    async fn instance_where(
        &self,
        what: &str,
        filter: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<InstanceRecord>> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM {{s}}.instances WHERE {filter}");
        self.query_opt(what, &sql, &[value]).await?.as_ref().map(instance).transpose()
    }

    /// See [`toygres_core::CatalogStore::create_instance`].
    pub async fn create_instance(&self, operation: OperationId, new: &NewInstance) -> Result<InstanceRecord> {
        let insert = format!(
            "INSERT INTO {{s}}.instances (id, operation_id, name, dns_label, state, image_type, pg_version, \
             source_image_id, password, created_at, updated_at, labels, databases, request_digest, recovery) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14) \
             ON CONFLICT (operation_id) DO NOTHING RETURNING {INSTANCE_COLUMNS}"
        );
        let (id, op, source) = (InstanceId::new(), operation.0, new.source_image_id.map(|i| i.0));
        let sealed = self.key.seal_for(&new.password, &instance_record(id));
        let (labels, databases) = (to_json(&new.labels)?, new.databases.as_ref().map(to_json).transpose()?);
        let recovery = new.recovery.as_ref().map(to_json).transpose()?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 14] = [
            &id.0,
            &op,
            &new.name,
            &new.dns_label,
            &new.state.as_str(),
            &new.image_type.as_str(),
            &new.pg_version,
            &source,
            &sealed,
            &now(),
            &labels,
            &databases,
            &new.request_digest,
            &recovery,
        ];
        // One pooled connection at a time: holding one while taking another can starve the pool.
        let inserted = {
            let client = self.client().await?;
            let statement = client.prepare_cached(&self.sql(&insert)).await.map_err(self.err("create an instance"))?;
            client.query_opt(&statement, &params).await
        };
        match inserted {
            Ok(Some(row)) => return instance(&row),
            Ok(None) => {}
            // The live-name index refused it: unless a concurrent retry of this very operation
            // won the race, the name belongs to another operation.
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return match self.instance_where("read an instance", "operation_id = $1", &op).await? {
                    Some(record) => {
                        self.check_request_digest("instances", operation, new.request_digest.as_ref()).await?;
                        Ok(record)
                    }
                    None => Err(Error::NameTaken(new.name.clone())),
                };
            }
            Err(e) => return Err(self.err("create an instance")(e)),
        }
        self.check_request_digest("instances", operation, new.request_digest.as_ref()).await?;
        self.instance_where("read an instance", "operation_id = $1", &op)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("operation {operation} created no instance")))
    }

    /// See [`toygres_core::CatalogStore::get_instance`].
    pub async fn get_instance(&self, id: InstanceId) -> Result<InstanceRecord> {
        let found = self.instance_where("read an instance", "id = $1 AND state <> 'deleted'", &id.0).await?;
        found.ok_or_else(|| Error::instance_not_found(id))
    }

    /// See [`toygres_core::CatalogStore::get_instance_including_deleted`].
    pub async fn get_instance_including_deleted(&self, id: InstanceId) -> Result<InstanceRecord> {
        let found = self.instance_where("read an instance", "id = $1", &id.0).await?;
        found.ok_or_else(|| Error::instance_not_found(id))
    }

    /// See [`toygres_core::CatalogStore::get_instance_by_name`].
    pub async fn get_instance_by_name(&self, name: &str) -> Result<InstanceRecord> {
        let found = self.instance_where("read an instance", "name = $1 AND state <> 'deleted'", &name).await?;
        found.ok_or_else(|| Error::InstanceNotFound(name.to_string()))
    }

    /// See [`toygres_core::CatalogStore::list_instances`].
    pub async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<InstanceRecord>> {
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM {{s}}.instances WHERE state <> 'deleted' \
             AND ($1::uuid IS NULL OR source_image_id = $1) AND ($2::text IS NULL OR state = $2) \
             AND ($3::text IS NULL OR name = $3) AND labels @> $4::jsonb \
             AND ($5::timestamptz IS NULL OR (created_at, id) > ($5, $6::uuid)) \
             ORDER BY created_at, id LIMIT $7"
        );
        let source = filter.source_image_id.map(|i| i.0);
        let state: Option<&str> = filter.state.map(|s| s.as_str());
        let (after, after_id) = position(filter.page_token.as_ref());
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
            [&source, &state, &filter.name, &to_json(&filter.labels)?, &after, &after_id, &limit(filter.limit)];
        self.query("list instances", &sql, &params).await?.iter().map(instance).collect()
    }

    /// See [`toygres_core::CatalogStore::set_instance_labels`].
    pub async fn set_instance_labels(&self, id: InstanceId, labels: &Labels) -> Result<InstanceRecord> {
        let sql = format!(
            "UPDATE {{s}}.instances SET labels = $1 WHERE id = $2 AND state <> 'deleted' RETURNING {INSTANCE_COLUMNS}"
        );
        match self.query_opt("set an instance's labels", &sql, &[&to_json(labels)?, &id.0]).await? {
            Some(row) => instance(&row),
            None => Err(Error::instance_not_found(id)),
        }
    }

    /// See [`toygres_core::CatalogStore::update_instance`]: `UPDATE … WHERE id = $ AND state = $`.
    pub async fn update_instance(
        &self,
        id: InstanceId,
        expected: InstanceState,
        update: InstanceUpdate,
    ) -> Result<InstanceRecord> {
        let target = update.target_state();
        expected.check_transition(target)?;
        let c = update.columns();
        let connection =
            c.connection.map(serde_json::to_value).transpose().map_err(|e| Error::Corrupt(e.to_string()))?;
        let (reason, erase, version) = (c.failure_reason, c.erase_password, c.pg_version);
        let sql = format!(
            "UPDATE {{s}}.instances SET state = $1, updated_at = GREATEST(updated_at, $2), \
             connection = COALESCE($3, connection), failure_reason = COALESCE($4, failure_reason), \
             password = CASE WHEN $5 THEN NULL ELSE password END, pg_version = COALESCE($8, pg_version) \
             WHERE id = $6 AND state = $7 RETURNING {INSTANCE_COLUMNS}"
        );
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] =
            [&target.as_str(), &now(), &connection, &reason, &erase, &id.0, &expected.as_str(), &version];
        if let Some(row) = self.query_opt("update an instance", &sql, &params).await? {
            if target == InstanceState::Deleted {
                self.clear_progress(toygres_core::Subject::Instance(id)).await?;
            }
            return instance(&row);
        }
        let sql = "SELECT state FROM {s}.instances WHERE id = $1";
        match self.query_opt("read an instance's state", sql, &[&id.0]).await? {
            None => Err(Error::instance_not_found(id)),
            Some(row) => Err(Error::StateConflict {
                entity: "instance",
                id: id.to_string(),
                expected: expected.to_string(),
                actual: row.get(0),
            }),
        }
    }

    /// See [`toygres_core::CatalogStore::set_instance_protection`]: in any state, deleted included.
    pub async fn set_instance_protection(
        &self,
        id: InstanceId,
        protection: Option<&Protection>,
    ) -> Result<InstanceRecord> {
        let sql = format!(
            "UPDATE {{s}}.instances SET protection = $1, updated_at = GREATEST(updated_at, $2) WHERE id = $3 \
             RETURNING {INSTANCE_COLUMNS}"
        );
        let protection = protection.map(to_json).transpose()?;
        match self.query_opt("set an instance's protection", &sql, &[&protection, &now(), &id.0]).await? {
            Some(row) => instance(&row),
            None => Err(Error::instance_not_found(id)),
        }
    }

    /// See [`toygres_core::CatalogStore::instance_password`].
    pub async fn instance_password(&self, id: InstanceId) -> Result<Password> {
        let sql = "SELECT password FROM {s}.instances WHERE id = $1 AND state <> 'deleted'";
        let row = self.query_opt("read an instance's password", sql, &[&id.0]).await?;
        match row.as_ref().and_then(|r| r.get::<_, Option<&[u8]>>(0)) {
            Some(sealed) => self.key.open_for(sealed, &instance_record(id)),
            None => Err(Error::instance_not_found(id)),
        }
    }
}
