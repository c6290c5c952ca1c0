//! The `WHERE … ORDER BY … LIMIT` of a filtered, paged listing, with its parameters in order.

use crate::codec::to_json;
use toygres_core::{Labels, PageToken, Result};

/// Conditions on one table, added one by one; every value is a bound parameter.
pub struct Conditions {
    table: &'static str,
    sql: Vec<String>,
    values: Vec<rusqlite::types::Value>,
}

impl Conditions {
    /// No condition but "not deleted".
    pub fn new(table: &'static str) -> Self {
        Self { table, sql: vec!["state <> 'deleted'".into()], values: Vec::new() }
    }

    fn bind(&mut self, value: impl Into<rusqlite::types::Value>) -> String {
        self.values.push(value.into());
        format!("?{}", self.values.len())
    }

    /// `column = value` when `value` is set.
    pub fn eq(&mut self, column: &str, value: Option<String>) {
        if let Some(value) = value {
            let p = self.bind(value);
            self.sql.push(format!("{column} = {p}"));
        }
    }

    /// Every pair of `labels` is in the row's `labels` JSON object.
    pub fn labels(&mut self, labels: &Labels) -> Result<()> {
        if !labels.is_empty() {
            let p = self.bind(to_json(labels)?);
            self.sql.push(format!(
                "NOT EXISTS (SELECT 1 FROM json_each({p}) AS want \
                 WHERE json_extract({t}.labels, '$.\"' || want.key || '\"') IS NOT want.value)",
                t = self.table
            ));
        }
        Ok(())
    }

    /// Only rows after `token` in `(created_at, id)` order.
    pub fn after(&mut self, token: Option<&PageToken>) {
        if let Some(t) = token {
            let at = self.bind(t.created_micros);
            let id = self.bind(t.id.to_string());
            self.sql.push(format!("(created_at > {at} OR (created_at = {at} AND id > {id}))"));
        }
    }

    /// The conditions, the order and the limit.
    pub fn finish(&mut self, limit: Option<usize>) -> String {
        let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let p = self.bind(limit);
        format!("{} ORDER BY created_at, id LIMIT {p}", self.sql.join(" AND "))
    }

    /// The parameters, in the order the SQL names them.
    pub fn values(&self) -> impl Iterator<Item = &rusqlite::types::Value> {
        self.values.iter()
    }
}
