//! Versioned migrations, applied on open inside one `BEGIN IMMEDIATE` transaction, so that two
//! processes opening the same file at once serialize instead of racing.

use crate::codec::Ctx;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use toygres_core::crypto::{image_record, instance_record, CatalogKey};
use toygres_core::{Error, Password, Result};

/// The newest schema version this build knows; [`MIGRATIONS`]`[v - 1]` creates version `v`.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The migrations, in order. Never edit a released one: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE catalog_meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE images (
    id                 TEXT PRIMARY KEY,
    operation_id       TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    description        TEXT,
    source_instance_id TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'failed', 'deleting', 'deleted')),
    pg_version         TEXT,
    image_type         TEXT NOT NULL,
    size_bytes         INTEGER,
    checksum           TEXT,
    failure_reason     TEXT,
    source_password    BLOB,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX images_by_created ON images (created_at, id);
CREATE INDEX images_by_source ON images (source_instance_id, created_at, id);
CREATE TABLE instances (
    id              TEXT PRIMARY KEY,
    operation_id    TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    dns_label       TEXT,
    state           TEXT NOT NULL CHECK (state IN ('provisioning', 'running', 'failed', 'deleting', 'deleted')),
    image_type      TEXT NOT NULL,
    pg_version      TEXT,
    source_image_id TEXT,
    connection      TEXT,
    failure_reason  TEXT,
    password        BLOB,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX instances_live_name ON instances (name) WHERE state <> 'deleted';
CREATE INDEX instances_by_created ON instances (created_at, id);
"#,
    r#"
ALTER TABLE images ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE images ADD COLUMN metadata TEXT;
ALTER TABLE instances ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE instances ADD COLUMN databases TEXT;
CREATE INDEX images_by_name ON images (name, created_at, id);
"#,
    r#"
ALTER TABLE images ADD COLUMN format TEXT NOT NULL DEFAULT 'logical' CHECK (format IN ('logical', 'physical'));
"#,
    r#"
ALTER TABLE images ADD COLUMN request_digest TEXT;
ALTER TABLE instances ADD COLUMN request_digest TEXT;
"#,
    // 5: the image's wrapped data key, as the JSON of a `WrappedKey`; NULL: stored unencrypted
    // (every image recorded before this version).
    r#"
ALTER TABLE images ADD COLUMN encryption TEXT;
"#,
    // 6: schedules of images (deleted ones kept, with `deleted_at`, for their operation's
    // retries), and the byte progress of the operation on an image or instance.
    r#"
CREATE TABLE schedules (
    id                TEXT PRIMARY KEY,
    operation_id      TEXT NOT NULL UNIQUE,
    name              TEXT NOT NULL,
    instance_id       TEXT NOT NULL,
    cron              TEXT NOT NULL,
    format            TEXT NOT NULL CHECK (format IN ('logical', 'physical')),
    keep_last         INTEGER NOT NULL CHECK (keep_last >= 1),
    keep_younger_than INTEGER CHECK (keep_younger_than >= 0),
    last_slot         INTEGER,
    request_digest    TEXT,
    created_at        INTEGER NOT NULL,
    deleted_at        INTEGER
);
CREATE UNIQUE INDEX schedules_live_name ON schedules (name) WHERE deleted_at IS NULL;
CREATE INDEX schedules_by_created ON schedules (created_at, id);
CREATE TABLE progress (
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('image', 'instance')),
    subject_id   TEXT NOT NULL,
    phase        TEXT NOT NULL,
    done         INTEGER NOT NULL CHECK (done >= 0),
    total        INTEGER CHECK (total >= 0),
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (subject_kind, subject_id)
);
"#,
    // 7: clone images. SQLite cannot alter a CHECK, so each `format` column is replaced by one
    // with the wider CHECK (column-level, so that `DROP COLUMN` is allowed; SQLite >= 3.35):
    // added, copied, dropped, renamed. The new `schedules.format` has a default (`ADD COLUMN …
    // NOT NULL` needs one); every insert names its format. `images.from_image`: the clone image
    // a physical image was exported from.
    r#"
ALTER TABLE images ADD COLUMN format_v7 TEXT NOT NULL DEFAULT 'logical'
    CHECK (format_v7 IN ('logical', 'physical', 'clone'));
UPDATE images SET format_v7 = format;
ALTER TABLE images DROP COLUMN format;
ALTER TABLE images RENAME COLUMN format_v7 TO format;
ALTER TABLE schedules ADD COLUMN format_v7 TEXT NOT NULL DEFAULT 'logical'
    CHECK (format_v7 IN ('logical', 'physical', 'clone'));
UPDATE schedules SET format_v7 = format;
ALTER TABLE schedules DROP COLUMN format;
ALTER TABLE schedules RENAME COLUMN format_v7 TO format;
ALTER TABLE images ADD COLUMN from_image TEXT;
"#,
    // 8: point-in-time restore: a restored instance's `RecoveryPlan` and an instance's
    // `Protection` (kept once it is deleted, while its archive is), each as JSON; NULL: none.
    r#"
ALTER TABLE instances ADD COLUMN recovery TEXT;
ALTER TABLE instances ADD COLUMN protection TEXT;
"#,
];

/// A fixed text sealed with the catalog key on first open: a later open with another key fails
/// with [`Error::WrongKey`] at once instead of at the first restore. The key itself is never stored.
const KEY_CHECK: &str = "toygres catalog key check";

/// Brings the schema to [`SCHEMA_VERSION`] and checks `key` against the catalog.
pub fn migrate(conn: &mut Connection, key: &CatalogKey) -> Result<()> {
    migrate_to(conn, key, SCHEMA_VERSION)
}

/// Brings the schema to version `target` (at most [`SCHEMA_VERSION`]; the tests build the
/// catalogs of earlier releases with a lower one) and checks `key` against the catalog.
fn migrate_to(conn: &mut Connection, key: &CatalogKey, target: i64) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("start the migration transaction")?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .ctx("create the schema_version table")?;
    let found: i64 = tx
        .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))
        .ctx("read the schema version")?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().take(target as usize).skip(found as usize) {
        let version = index as i64 + 1;
        tx.execute_batch(sql).ctx(&format!("apply catalog migration {version}"))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            (version, crate::codec::now_micros()),
        )
        .ctx("record the schema version")?;
        tracing::info!(version, "sqlite catalog: applied migration");
    }
    let check: Option<Vec<u8>> = tx
        .query_row("SELECT value FROM catalog_meta WHERE key = 'key_check'", [], |r| r.get(0))
        .optional()
        .ctx("read the key check")?;
    match check {
        Some(sealed) => {
            if key.open(&sealed)?.expose() != KEY_CHECK {
                return Err(Error::WrongKey);
            }
        }
        None => {
            let sealed = key.seal(&Password::new(KEY_CHECK));
            tx.execute("INSERT INTO catalog_meta (key, value) VALUES ('key_check', ?1)", [sealed])
                .ctx("store the key check")?;
        }
    }
    bind_legacy_secrets(&tx, key)?;
    tx.commit().ctx("commit the migrations")
}

/// Seals again, bound to their record ([`CatalogKey::seal_for`]), the passwords earlier releases
/// sealed unbound, so that none of them can be moved to another row. Runs on every open; finds
/// nothing once they are all bound.
fn bind_legacy_secrets(tx: &rusqlite::Transaction<'_>, key: &CatalogKey) -> Result<()> {
    let image: fn(&str) -> Option<String> = |id| id.parse().ok().map(image_record);
    let instance: fn(&str) -> Option<String> = |id| id.parse().ok().map(instance_record);
    let tables = [("images", "source_password", image), ("instances", "password", instance)];
    for (table, column, record) in tables {
        let select = format!("SELECT id, {column} FROM {table} WHERE substr({column}, 1, 1) = x'01'");
        let mut statement = tx.prepare(&select).ctx("find unbound sealed passwords")?;
        let rows = statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)));
        let rows: Vec<(String, Vec<u8>)> = rows.and_then(Iterator::collect).ctx("read unbound sealed passwords")?;
        for (id, sealed) in rows {
            let Some(record) = record(&id) else { continue };
            if let Some(bound) = key.rebind(&sealed, &record)? {
                tx.execute(&format!("UPDATE {table} SET {column} = ?1 WHERE id = ?2"), rusqlite::params![bound, id])
                    .ctx("bind a sealed password to its record")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
