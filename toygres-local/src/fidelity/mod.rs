//! Checking that a restored instance equals its source — the project's fidelity comparator:
//! - roles: every attribute, password hash, settings, memberships with their admin option;
//! - databases (all but `template0`): every property a user can set ([`PROPERTY_NAMES`]: owner,
//!   encoding, collation, locale provider and locale, ICU rules, connection limit, whether it
//!   accepts connections or is a template, ACL, comment, security labels, its settings and its
//!   per-role settings), its schema dump, a row checksum of every table, every sequence's state and
//!   every large object (owner, ACL, comment, content).
//!
//! The few differences between PostgreSQL builds it tolerates are named in [`tolerated`], with
//! the reason for each; any other difference is reported.
//!
//! Also the data the tests image: the small [`sample`] and the [`corpus`] exercising every
//! property above and the usual schema objects.

pub mod corpus;
mod database;
mod roles;
pub mod sample;
pub mod tolerated;

pub use database::{schema_dump, DatabaseSnapshot, PROPERTY_NAMES};

use crate::cluster::{with_connections_allowed, ConnParams, PgBinaries};
use std::collections::BTreeMap;
use tokio_postgres::Client;
use toygres_core::{Error, Password, Result};

const WHO: &str = "fidelity";

/// What an instance holds, for comparison. Take both sides with the same (the newer) binaries:
/// the schema dumps come from their `pg_dump`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSnapshot {
    /// Every database but `template0`, by name.
    pub databases: BTreeMap<String, DatabaseSnapshot>,
    /// One line per role: name, every attribute, md5 of its password hash, its settings.
    pub roles: Vec<String>,
    /// One line per role membership, with its admin option.
    pub memberships: Vec<String>,
    /// `server_version` (not compared: a restore may run a newer major).
    pub server_version: String,
}

impl InstanceSnapshot {
    /// Takes a snapshot of the instance at `params`. A database that refuses connections is opened
    /// for the time it takes to read it, then closed again (its properties are read before).
    pub async fn take(bin: &PgBinaries, params: &ConnParams, password: &Password) -> Result<Self> {
        let client = params.connect("postgres", password).await?;
        let server_version = client
            .query_one("SELECT current_setting('server_version')", &[])
            .await
            .map_err(|e| Error::backend(WHO, "reading server_version", e))?
            .get(0);
        let (roles, memberships) = roles::roles(&client).await?;
        let mut databases = BTreeMap::new();
        for (name, properties) in database::properties(&client).await? {
            let closed = properties.get("allow_connections").map(String::as_str) == Some("false");
            let contents = database::contents(bin, params, password, &name, properties);
            let snapshot = with_connections_allowed(&client, &name, closed, WHO, contents).await?;
            databases.insert(name, snapshot);
        }
        Ok(Self { databases, roles, memberships, server_version })
    }

    /// Human-readable differences from `other` (empty when equal).
    pub fn diff(&self, other: &Self) -> Vec<String> {
        let mut out = Vec::new();
        diff_lines(&mut out, "roles", &self.roles, &other.roles);
        diff_lines(&mut out, "memberships", &self.memberships, &other.memberships);
        let names = |s: &Self| s.databases.keys().cloned().collect::<Vec<_>>();
        if names(self) != names(other) {
            out.push(format!("databases differ: {:?} vs {:?}", names(self), names(other)));
        }
        for (name, a) in &self.databases {
            let Some(b) = other.databases.get(name) else { continue };
            for (property, value) in &a.properties {
                if b.properties.get(property) != Some(value) {
                    out.push(format!("{name}: {property} {value:?} vs {:?}", b.properties.get(property)));
                }
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
            if a.sequences != b.sequences {
                out.push(format!("{name}: sequences {:?} vs {:?}", a.sequences, b.sequences));
            }
            diff_lines(&mut out, &format!("{name}: large objects"), &a.large_objects, &b.large_objects);
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

fn diff_lines(out: &mut Vec<String>, what: &str, a: &[String], b: &[String]) {
    if a != b {
        let only_a: Vec<_> = a.iter().filter(|l| !b.contains(l)).collect();
        let only_b: Vec<_> = b.iter().filter(|l| !a.contains(l)).collect();
        out.push(format!("{what} differ: only in the first {only_a:?}, only in the second {only_b:?}"));
    }
}

/// The first column of every row of `sql`, as text.
pub(crate) async fn query_lines(client: &Client, sql: &str, who: &'static str) -> Result<Vec<String>> {
    let rows = client.query(sql, &[]).await.map_err(|e| Error::backend(who, "reading the catalog", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
