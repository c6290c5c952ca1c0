//! Checking that a restored instance equals its source: per database, the schema dump and a row
//! checksum of every table; the large objects; the roles with their password hashes and
//! memberships. Also the [`sample`] data the tests and the example image.

pub mod sample;

use crate::cluster::{ConnParams, PgBinaries};
use std::collections::BTreeMap;
use toygres_core::{Error, Password, Result};

const WHO: &str = "verify";

/// What one database holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSnapshot {
    /// Owning role.
    pub owner: String,
    /// `pg_dump --schema-only` output (without its random `\restrict` keys).
    pub schema: String,
    /// `schema.table` → (row count, md5 of every row as text, sorted).
    pub tables: BTreeMap<String, (i64, String)>,
    /// (oid, md5 of content) of every large object.
    pub large_objects: Vec<(u32, String)>,
}

/// What an instance holds, for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSnapshot {
    /// Every non-template database by name.
    pub databases: BTreeMap<String, DatabaseSnapshot>,
    /// One line per role: name, attributes, md5 of its password hash, memberships.
    pub roles: Vec<String>,
}

impl InstanceSnapshot {
    /// Takes a snapshot of the instance at `params`.
    pub async fn take(bin: &PgBinaries, params: &ConnParams, password: &Password) -> Result<Self> {
        let client = params.connect("postgres", password).await?;
        let q = |e| Error::backend(WHO, "reading the catalog", e);
        let dbs = client
            .query("SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE NOT datistemplate ORDER BY 1", &[])
            .await
            .map_err(q)?;
        let roles = client
            .query(
                "SELECT format('%s super=%s login=%s pw=%s in=%s', r.rolname, r.rolsuper, r.rolcanlogin, \
                 md5(coalesce(r.rolpassword, '')), \
                 (SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m \
                  JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)) \
                 FROM pg_authid r WHERE r.rolname NOT LIKE 'pg\\_%' ORDER BY r.rolname",
                &[],
            )
            .await
            .map_err(q)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut databases = BTreeMap::new();
        for row in dbs {
            let (name, owner): (String, String) = (row.get(0), row.get(1));
            let snapshot = database(bin, params, password, &name, owner).await?;
            databases.insert(name, snapshot);
        }
        Ok(Self { databases, roles })
    }

    /// Human-readable differences from `other` (empty when equal).
    pub fn diff(&self, other: &Self) -> Vec<String> {
        let mut out = Vec::new();
        if self.roles != other.roles {
            out.push(format!("roles differ:\n  {:?}\n  {:?}", self.roles, other.roles));
        }
        let names = |s: &Self| s.databases.keys().cloned().collect::<Vec<_>>();
        if names(self) != names(other) {
            out.push(format!("databases differ: {:?} vs {:?}", names(self), names(other)));
        }
        for (name, a) in &self.databases {
            let Some(b) = other.databases.get(name) else { continue };
            if a.owner != b.owner {
                out.push(format!("{name}: owner {} vs {}", a.owner, b.owner));
            }
            if a.schema != b.schema {
                let first = a.schema.lines().zip(b.schema.lines()).find(|(x, y)| x != y);
                out.push(format!("{name}: schema dumps differ, first at {first:?}"));
            }
            for (table, sum) in &a.tables {
                if b.tables.get(table) != Some(sum) {
                    out.push(format!("{name}.{table}: {sum:?} vs {:?}", b.tables.get(table)));
                }
            }
            if a.tables.len() != b.tables.len() {
                out.push(format!("{name}: {} tables vs {}", a.tables.len(), b.tables.len()));
            }
            if a.large_objects != b.large_objects {
                out.push(format!("{name}: large objects differ"));
            }
        }
        out
    }

    /// Counts for a summary: (databases, tables, rows, large objects).
    pub fn counts(&self) -> (usize, usize, i64, usize) {
        let dbs = self.databases.values();
        let tables = dbs.clone().map(|d| d.tables.len()).sum();
        let rows = dbs.clone().flat_map(|d| d.tables.values().map(|t| t.0)).sum();
        (self.databases.len(), tables, rows, dbs.map(|d| d.large_objects.len()).sum())
    }
}

async fn database(
    bin: &PgBinaries,
    params: &ConnParams,
    password: &Password,
    name: &str,
    owner: String,
) -> Result<DatabaseSnapshot> {
    let mut dump = params.client(bin, "pg_dump", password);
    dump.env("PGDATABASE", name).arg("--schema-only");
    let schema = crate::cluster::process::run(dump, &format!("schema dump of {name}"), &[password.expose()]).await?;
    let schema = schema.lines().filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"));
    let schema = schema.collect::<Vec<_>>().join("\n");
    let client = params.connect(name, password).await?;
    let q = |e| Error::backend(WHO, format!("reading {name}"), e);
    let tables = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1",
            &[],
        )
        .await
        .map_err(q)?;
    let mut sums = BTreeMap::new();
    for row in tables {
        let table: String = row.get(0);
        let sql =
            format!("SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t");
        let sum = client.query_one(&sql, &[]).await.map_err(q)?;
        sums.insert(table, (sum.get(0), sum.get(1)));
    }
    let large_objects = client
        .query("SELECT oid, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid", &[])
        .await
        .map_err(q)?
        .iter()
        .map(|r| (r.get::<_, u32>(0), r.get(1)))
        .collect();
    Ok(DatabaseSnapshot { owner, schema, tables: sums, large_objects })
}
