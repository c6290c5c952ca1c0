//! One database's part of a snapshot: its own properties (read from `pg_database` and the shared
//! catalogs) and its contents (schema dump, row checksums, sequences, large objects).

use super::WHO;
use crate::cluster::{ConnParams, PgBinaries};
use std::collections::BTreeMap;
use tokio_postgres::Client;
use toygres_core::{Error, Password, Result};

/// Every property of every database but `template0`, one row each: name, then the values named by
/// [`PROPERTY_NAMES`]. `to_jsonb` hides the columns that differ by major (locale provider from 15,
/// `daticulocale` in 15–16, `datlocale` from 17, ICU rules from 16).
const PROPERTIES: &str = "SELECT d.datname, pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), \
     d.datcollate, d.datctype, coalesce(to_jsonb(d)->>'datlocprovider', 'c'), \
     coalesce(to_jsonb(d)->>'datlocale', to_jsonb(d)->>'daticulocale', ''), coalesce(to_jsonb(d)->>'daticurules', ''), \
     d.datconnlimit::text, d.datallowconn::text, d.datistemplate::text, \
     coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(d.datacl) a), 'default'), \
     coalesce(shobj_description(d.oid, 'pg_database'), ''), \
     coalesce((SELECT string_agg(l.provider || '=' || l.label, ',' ORDER BY l.provider) FROM pg_shseclabel l \
               WHERE l.objoid = d.oid AND l.classoid = 'pg_database'::regclass), ''), \
     coalesce((SELECT array_to_string(s.setconfig, ',') FROM pg_db_role_setting s \
               WHERE s.setdatabase = d.oid AND s.setrole = 0), ''), \
     coalesce((SELECT string_agg(pg_get_userbyid(s.setrole) || ':' || array_to_string(s.setconfig, ','), ';' \
               ORDER BY pg_get_userbyid(s.setrole)) FROM pg_db_role_setting s \
               WHERE s.setdatabase = d.oid AND s.setrole <> 0), '') \
     FROM pg_database d WHERE d.datname <> 'template0' ORDER BY 1";

/// The names of the properties `PROPERTIES` reads, in its column order (after the name).
pub const PROPERTY_NAMES: &[&str] = &[
    "owner",
    "encoding",
    "lc_collate",
    "lc_ctype",
    "locale_provider",
    "provider_locale",
    "icu_rules",
    "connection_limit",
    "allow_connections",
    "is_template",
    "acl",
    "comment",
    "security_labels",
    "settings",
    "role_settings",
];

/// What one database holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSnapshot {
    /// Its own properties by [`PROPERTY_NAMES`] (owner, locale, ACL, settings, …).
    pub properties: BTreeMap<&'static str, String>,
    /// `pg_dump --schema-only` output (without its random `\restrict` keys and version comments).
    pub schema: String,
    /// `schema.table` → (row count, md5 of every row as text, sorted).
    pub tables: BTreeMap<String, (i64, String)>,
    /// `schema.sequence` → `last_value is_called`.
    pub sequences: BTreeMap<String, String>,
    /// One line per large object: oid, owner, ACL, comment and md5 of its content.
    pub large_objects: Vec<String>,
}

impl DatabaseSnapshot {
    /// Its owner.
    pub fn owner(&self) -> &str {
        self.properties.get("owner").map(String::as_str).unwrap_or("")
    }
}

/// Every database's properties by name.
pub(super) async fn properties(client: &Client) -> Result<BTreeMap<String, BTreeMap<&'static str, String>>> {
    let rows = client.query(PROPERTIES, &[]).await.map_err(|e| Error::backend(WHO, "reading pg_database", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let props = PROPERTY_NAMES.iter().enumerate().map(|(i, n)| (*n, r.get::<_, String>(i + 1))).collect();
            (r.get(0), props)
        })
        .collect())
}

/// `pg_dump --schema-only` of database `name` with `bin`'s `pg_dump`, without the lines that differ
/// between two dumps of the same schema (random `\restrict` keys, version comments) and without
/// the attribute options a server sets by itself ([`super::tolerated`]).
pub async fn schema_dump(bin: &PgBinaries, params: &ConnParams, password: &Password, name: &str) -> Result<String> {
    let mut dump = params.client(bin, "pg_dump", password);
    dump.env("PGDATABASE", name).arg("--schema-only");
    let schema = crate::cluster::process::run(dump, &format!("schema dump of {name}"), &[password.expose()]).await?;
    let noise = ["\\restrict", "\\unrestrict", "-- Dumped from", "-- Dumped by"];
    let schema = schema.lines().filter(|l| !noise.iter().any(|n| l.starts_with(n)));
    Ok(super::tolerated::without_server_internal_options(&schema.collect::<Vec<_>>().join("\n")))
}

/// The contents of database `name`, read with `bin`'s `pg_dump`.
pub(super) async fn contents(
    bin: &PgBinaries,
    params: &ConnParams,
    password: &Password,
    name: &str,
    properties: BTreeMap<&'static str, String>,
) -> Result<DatabaseSnapshot> {
    let schema = schema_dump(bin, params, password, name).await?;
    let client = params.connect(name, password).await?;
    let q = |e| Error::backend(WHO, format!("reading {name}"), e);
    let relations = |kinds: &'static str| {
        format!(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ({kinds}) AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1"
        )
    };
    let mut tables = BTreeMap::new();
    for row in client.query(&relations("'r', 'p', 'm'"), &[]).await.map_err(q)? {
        let table: String = row.get(0);
        let sql =
            format!("SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t");
        let sum = client.query_one(&sql, &[]).await.map_err(q)?;
        tables.insert(table, (sum.get(0), sum.get(1)));
    }
    let mut sequences = BTreeMap::new();
    for row in client.query(&relations("'S'"), &[]).await.map_err(q)? {
        let seq: String = row.get(0);
        let sql = format!("SELECT format('%s %s', last_value, is_called) FROM {seq}");
        sequences.insert(seq, client.query_one(&sql, &[]).await.map_err(q)?.get(0));
    }
    let large_objects = super::query_lines(
        &client,
        "SELECT format('%s owner=%s acl=%s comment=%s md5=%s', m.oid, pg_get_userbyid(m.lomowner), \
         array_to_string(m.lomacl, ','), obj_description(m.oid, 'pg_largeobject'), md5(lo_get(m.oid))) \
         FROM pg_largeobject_metadata m ORDER BY m.oid",
        WHO,
    )
    .await?;
    Ok(DatabaseSnapshot { properties, schema, tables, sequences, large_objects })
}
