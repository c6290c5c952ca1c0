//! Database-level SQL of an image (format 2): what `pg_dump --create` writes about a database
//! itself, split into what runs before its contents are loaded and what runs after.
//!
//! `pg_dump --format=custom` without `--create` (what loads fastest, in one transaction) carries a
//! database's contents but none of its own properties: its locale, settings, ACL and comment are
//! written only with `--create`, and `pg_restore --create` cannot run in a single transaction. So
//! a backup also runs `pg_dump --create --schema-only --exclude-schema='*'` (a few hundred bytes,
//! milliseconds) and keeps only the database's own entries from it ([`DatabaseSql::from_pg_dump`]).

use serde::{Deserialize, Serialize};

/// The database-level SQL of one database.
///
/// ```
/// use toygres_core::manifest::DatabaseSql;
/// let dump = "\
/// -- Name: app; Type: DATABASE; Schema: -; Owner: app\n\
/// CREATE DATABASE app WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C';\n\
/// ALTER DATABASE app OWNER TO app;\n\
/// \\connect app\n\
/// SET statement_timeout = 0;\n\
/// -- Name: DATABASE app; Type: COMMENT; Schema: -; Owner: app\n\
/// COMMENT ON DATABASE app IS 'orders';\n\
/// -- Name: citext; Type: EXTENSION; Schema: -; Owner: -\n\
/// CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public;\n";
/// let sql = DatabaseSql::from_pg_dump(dump);
/// assert!(sql.create.starts_with("CREATE DATABASE app"));
/// assert_eq!(sql.properties, "COMMENT ON DATABASE app IS 'orders';\n");
/// assert_eq!(sql.create_for_existing(), "ALTER DATABASE app OWNER TO app;\n");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseSql {
    /// `CREATE DATABASE …` (encoding, locale, locale provider) and `ALTER DATABASE … OWNER TO …`:
    /// run on the `postgres` database before the contents are loaded.
    pub create: String,
    /// Everything else about the database, run on the `postgres` database after the contents are
    /// loaded: its `DATABASE PROPERTIES` entry (connection limit, `IS_TEMPLATE`, `ALTER DATABASE …
    /// SET`, `ALTER ROLE … IN DATABASE … SET`), its `COMMENT`, `SECURITY LABEL`s and ACL, and
    /// `ALTER DATABASE … ALLOW_CONNECTIONS false` when the source refused connections.
    pub properties: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    Create,
    Properties,
    Other,
}

/// Which part a `-- Name: <name>; Type: <type>; …` header starts.
fn section_of(header: &str) -> Section {
    let Some(rest) = header.strip_prefix("-- Name: ") else { return Section::Other };
    let (name, rest) = rest.split_once("; Type: ").unwrap_or((rest, ""));
    let kind = rest.split(';').next().unwrap_or("");
    match kind {
        "DATABASE" => Section::Create,
        "DATABASE PROPERTIES" => Section::Properties,
        "COMMENT" | "ACL" | "SECURITY LABEL" if name.starts_with("DATABASE ") => Section::Properties,
        _ => Section::Other,
    }
}

/// Whether a line outside a string literal is pg_dump's scaffolding rather than a statement of
/// the section: blank lines, comments, psql meta-commands and the session `SET`s it repeats after
/// every `\connect`.
fn is_scaffolding(line: &str) -> bool {
    line.trim().is_empty()
        || line.starts_with("--")
        || line.starts_with('\\')
        || line.starts_with("SET ")
        || line.starts_with("SELECT pg_catalog.set_config(")
}

impl DatabaseSql {
    /// Splits the output of `pg_dump --create --schema-only --exclude-schema='*'` (plain format):
    /// keeps the `DATABASE` entry in [`DatabaseSql::create`], the database's `DATABASE PROPERTIES`,
    /// `COMMENT`, `SECURITY LABEL` and `ACL` entries in [`DatabaseSql::properties`], and drops
    /// everything else (extensions, session settings, meta-commands). Statements spanning lines (a
    /// comment with newlines) are kept whole: a line inside an open string literal is never dropped.
    pub fn from_pg_dump(sql: &str) -> Self {
        let mut out = Self::default();
        let mut section = Section::Other;
        let mut in_literal = false;
        for line in sql.lines() {
            if !in_literal {
                if line.starts_with("-- Name: ") {
                    section = section_of(line);
                    continue;
                }
                if is_scaffolding(line) {
                    continue;
                }
            }
            // pg_dump writes standard-conforming literals: a quote is doubled, never escaped.
            if line.matches('\'').count() % 2 == 1 {
                in_literal = !in_literal;
            }
            let target = match section {
                Section::Create => &mut out.create,
                Section::Properties => &mut out.properties,
                Section::Other => continue,
            };
            target.push_str(line);
            target.push('\n');
        }
        out
    }

    /// [`DatabaseSql::create`] for a database that exists already in a fresh cluster (`postgres`,
    /// `template1`): its `ALTER DATABASE` statements without the `CREATE DATABASE`.
    pub fn create_for_existing(&self) -> String {
        self.create.lines().filter(|l| !l.starts_with("CREATE DATABASE ")).map(|l| format!("{l}\n")).collect()
    }
}

/// Databases a fresh cluster has already: their `CREATE DATABASE` is skipped at restore.
pub fn exists_in_fresh_cluster(database: &str) -> bool {
    matches!(database, "postgres" | "template1")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
\\restrict abc
SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
--
-- Name: dé x; Type: DATABASE; Schema: -; Owner: postgres
--

CREATE DATABASE \"dé x\" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C';


ALTER DATABASE \"dé x\" OWNER TO postgres;

\\unrestrict abc
\\encoding SQL_ASCII
\\connect -reuse-previous=on \"dbname='dé x'\"
\\restrict abc

SET client_encoding = 'UTF8';
--
-- Name: DATABASE \"dé x\"; Type: COMMENT; Schema: -; Owner: postgres
--

COMMENT ON DATABASE \"dé x\" IS 'it''s
-- not a comment
SET neither';


--
-- Name: dé x; Type: DATABASE PROPERTIES; Schema: -; Owner: postgres
--

ALTER DATABASE \"dé x\" CONNECTION LIMIT = 7;
ALTER ROLE r1 IN DATABASE \"dé x\" SET search_path TO 'a', 'b';

--
-- Name: citext; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public;

--
-- Name: DATABASE \"dé x\"; Type: ACL; Schema: -; Owner: postgres
--

REVOKE CONNECT,TEMPORARY ON DATABASE \"dé x\" FROM PUBLIC;
GRANT CONNECT ON DATABASE \"dé x\" TO r1;

\\unrestrict abc
";

    #[test]
    fn keeps_the_database_entries_only() {
        let sql = DatabaseSql::from_pg_dump(DUMP);
        assert_eq!(
            sql.create,
            "CREATE DATABASE \"dé x\" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C';\n\
             ALTER DATABASE \"dé x\" OWNER TO postgres;\n"
        );
        assert_eq!(
            sql.properties,
            "COMMENT ON DATABASE \"dé x\" IS 'it''s\n-- not a comment\nSET neither';\n\
             ALTER DATABASE \"dé x\" CONNECTION LIMIT = 7;\n\
             ALTER ROLE r1 IN DATABASE \"dé x\" SET search_path TO 'a', 'b';\n\
             REVOKE CONNECT,TEMPORARY ON DATABASE \"dé x\" FROM PUBLIC;\n\
             GRANT CONNECT ON DATABASE \"dé x\" TO r1;\n"
        );
        assert_eq!(sql.create_for_existing(), "ALTER DATABASE \"dé x\" OWNER TO postgres;\n");
    }

    #[test]
    fn other_objects_named_database_are_not_database_entries() {
        let dump = "-- Name: DATABASE x; Type: TABLE; Schema: public; Owner: a\nCREATE TABLE t ();\n";
        assert_eq!(DatabaseSql::from_pg_dump(dump), DatabaseSql::default());
    }
}
