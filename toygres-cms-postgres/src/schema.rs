//! Versioned migrations, applied on connect under a transaction-scoped advisory lock so that
//! several control planes connecting at once serialize instead of racing.

use crate::config::PostgresCatalogConfig;
use crate::errors::db;
use tokio_postgres::Client;
use toygres_core::crypto::{image_record, instance_record, CatalogKey};
use toygres_core::{Error, Password, Result};

/// The newest schema version this build knows; `MIGRATIONS[v - 1]` creates version `v`.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The migrations, in order, with `{s}` standing for the quoted schema. Never edit a released
/// one: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE {s}.catalog_meta (
    key   text PRIMARY KEY,
    value bytea NOT NULL
);
CREATE TABLE {s}.images (
    id                 uuid PRIMARY KEY,
    operation_id       uuid NOT NULL UNIQUE,
    name               text NOT NULL,
    description        text,
    source_instance_id uuid NOT NULL,
    state              text NOT NULL CHECK (state IN ('creating', 'ready', 'failed', 'deleting', 'deleted')),
    pg_version         text,
    image_type         text NOT NULL,
    size_bytes         bigint CHECK (size_bytes >= 0),
    checksum           text,
    failure_reason     text,
    source_password    bytea,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX images_by_created ON {s}.images (created_at, id);
CREATE INDEX images_by_source ON {s}.images (source_instance_id, created_at, id);
CREATE TABLE {s}.instances (
    id              uuid PRIMARY KEY,
    operation_id    uuid NOT NULL UNIQUE,
    name            text NOT NULL,
    dns_label       text,
    state           text NOT NULL CHECK (state IN ('provisioning', 'running', 'failed', 'deleting', 'deleted')),
    image_type      text NOT NULL,
    pg_version      text,
    source_image_id uuid,
    connection      jsonb,
    failure_reason  text,
    password        bytea,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE UNIQUE INDEX instances_live_name ON {s}.instances (name) WHERE state <> 'deleted';
CREATE INDEX instances_by_created ON {s}.instances (created_at, id);
"#,
    r#"
ALTER TABLE {s}.images ADD COLUMN labels jsonb NOT NULL DEFAULT '{}';
ALTER TABLE {s}.images ADD COLUMN metadata jsonb;
ALTER TABLE {s}.instances ADD COLUMN labels jsonb NOT NULL DEFAULT '{}';
ALTER TABLE {s}.instances ADD COLUMN databases jsonb;
CREATE INDEX images_by_name ON {s}.images (name, created_at, id);
CREATE INDEX images_labels ON {s}.images USING gin (labels);
CREATE INDEX instances_labels ON {s}.instances USING gin (labels);
"#,
    r#"
ALTER TABLE {s}.images ADD COLUMN format text NOT NULL DEFAULT 'logical' CHECK (format IN ('logical', 'physical'));
"#,
    r#"
ALTER TABLE {s}.images ADD COLUMN request_digest text;
ALTER TABLE {s}.instances ADD COLUMN request_digest text;
"#,
    // 5: the image's wrapped data key, a `WrappedKey` as JSON; NULL: stored unencrypted (every
    // image recorded before this version).
    r#"
ALTER TABLE {s}.images ADD COLUMN encryption jsonb;
"#,
    // 6: schedules of images (deleted ones kept, with `deleted_at`, for their operation's
    // retries), and the byte progress of the operation on an image or instance.
    r#"
CREATE TABLE {s}.schedules (
    id                uuid PRIMARY KEY,
    operation_id      uuid NOT NULL UNIQUE,
    name              text NOT NULL,
    instance_id       uuid NOT NULL,
    cron              text NOT NULL,
    format            text NOT NULL CHECK (format IN ('logical', 'physical')),
    keep_last         integer NOT NULL CHECK (keep_last >= 1),
    keep_younger_than bigint CHECK (keep_younger_than >= 0),
    last_slot         timestamptz,
    request_digest    text,
    created_at        timestamptz NOT NULL,
    deleted_at        timestamptz
);
CREATE UNIQUE INDEX schedules_live_name ON {s}.schedules (name) WHERE deleted_at IS NULL;
CREATE INDEX schedules_by_created ON {s}.schedules (created_at, id);
CREATE TABLE {s}.progress (
    subject_kind text NOT NULL CHECK (subject_kind IN ('image', 'instance')),
    subject_id   uuid NOT NULL,
    phase        text NOT NULL,
    done         bigint NOT NULL CHECK (done >= 0),
    total        bigint CHECK (total >= 0),
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (subject_kind, subject_id)
);
"#,
    // 7: clone images: the `format` checks (named by PostgreSQL's default `<table>_<column>_check`
    // in migrations 3 and 6) also allow 'clone'; `images.from_image`: the clone image a physical
    // image was exported from.
    r#"
ALTER TABLE {s}.images DROP CONSTRAINT images_format_check;
ALTER TABLE {s}.images ADD CONSTRAINT images_format_check CHECK (format IN ('logical', 'physical', 'clone'));
ALTER TABLE {s}.schedules DROP CONSTRAINT schedules_format_check;
ALTER TABLE {s}.schedules ADD CONSTRAINT schedules_format_check CHECK (format IN ('logical', 'physical', 'clone'));
ALTER TABLE {s}.images ADD COLUMN from_image uuid;
"#,
    // 8: point-in-time restore: a restored instance's `RecoveryPlan` and an instance's
    // `Protection` (kept once it is deleted, while its archive is); NULL: none.
    r#"
ALTER TABLE {s}.instances ADD COLUMN recovery jsonb;
ALTER TABLE {s}.instances ADD COLUMN protection jsonb;
"#,
];

/// A fixed text sealed with the catalog key on first connect, so that connecting with another
/// key fails with [`Error::WrongKey`] at once. The key itself is never stored.
const KEY_CHECK: &str = "toygres catalog key check";

/// The advisory lock key of `schema`'s migrations: FNV-1a of a fixed prefix and the name.
fn lock_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "toygres-cms-migrations/".bytes().chain(schema.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// Brings `schema` to [`SCHEMA_VERSION`] and checks `key` against the catalog.
pub async fn migrate(client: &mut Client, config: &PostgresCatalogConfig, s: &str, key: &CatalogKey) -> Result<()> {
    migrate_to(client, config, s, key, SCHEMA_VERSION).await
}

/// Brings `schema` to version `target` (at most [`SCHEMA_VERSION`]; the tests build the
/// catalogs of earlier releases with a lower one) and checks `key` against the catalog.
async fn migrate_to(
    client: &mut Client,
    config: &PostgresCatalogConfig,
    s: &str,
    key: &CatalogKey,
    target: i64,
) -> Result<()> {
    let e = |what: &'static str| move |err| db(config, what, err);
    let tx = client.transaction().await.map_err(e("start the migration transaction"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(s)]).await.map_err(e("take the migration lock"))?;
    let bootstrap = format!(
        "CREATE SCHEMA IF NOT EXISTS {s}; CREATE TABLE IF NOT EXISTS {s}.schema_version \
         (version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    );
    tx.batch_execute(&bootstrap).await.map_err(e("create the catalog schema"))?;
    let found: i64 = tx
        .query_one(&format!("SELECT COALESCE(MAX(version), 0)::bigint FROM {s}.schema_version"), &[])
        .await
        .map_err(e("read the schema version"))?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().take(target as usize).skip(found as usize) {
        let version = index as i64 + 1;
        tx.batch_execute(&sql.replace("{s}", s)).await.map_err(e("apply a catalog migration"))?;
        tx.execute(&format!("INSERT INTO {s}.schema_version (version) VALUES ($1)"), &[&version])
            .await
            .map_err(e("record the schema version"))?;
        tracing::info!(version, schema = s, "postgres catalog: applied migration");
    }
    let check = tx
        .query_opt(&format!("SELECT value FROM {s}.catalog_meta WHERE key = 'key_check'"), &[])
        .await
        .map_err(e("read the key check"))?;
    match check {
        Some(row) => {
            if key.open(row.get::<_, &[u8]>(0))?.expose() != KEY_CHECK {
                return Err(Error::WrongKey);
            }
        }
        None => {
            let sealed = key.seal(&Password::new(KEY_CHECK));
            tx.execute(&format!("INSERT INTO {s}.catalog_meta (key, value) VALUES ('key_check', $1)"), &[&sealed])
                .await
                .map_err(e("store the key check"))?;
        }
    }
    bind_legacy_secrets(&tx, config, s, key).await?;
    tx.commit().await.map_err(e("commit the migrations"))
}

/// Seals again, bound to their record ([`CatalogKey::seal_for`]), the passwords earlier releases
/// sealed unbound, so that none of them can be moved to another row. Runs on every connect;
/// finds nothing once they are all bound.
async fn bind_legacy_secrets(
    tx: &tokio_postgres::Transaction<'_>,
    config: &PostgresCatalogConfig,
    s: &str,
    key: &CatalogKey,
) -> Result<()> {
    let e = |what: &'static str| move |err| db(config, what, err);
    let image: fn(uuid::Uuid) -> String = |id| image_record(id.into());
    let instance: fn(uuid::Uuid) -> String = |id| instance_record(id.into());
    let tables = [("images", "source_password", image), ("instances", "password", instance)];
    for (table, column, record) in tables {
        let select = format!("SELECT id, {column} FROM {s}.{table} WHERE get_byte({column}, 0) = 1");
        for row in tx.query(&select, &[]).await.map_err(e("find unbound sealed passwords"))? {
            let (id, sealed): (uuid::Uuid, Vec<u8>) = (row.get(0), row.get(1));
            if let Some(bound) = key.rebind(&sealed, &record(id))? {
                let update = format!("UPDATE {s}.{table} SET {column} = $1 WHERE id = $2");
                tx.execute(&update, &[&bound, &id]).await.map_err(e("bind a sealed password to its record"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
