//! The fidelity corpus: an instance that sets every database- and cluster-level property a user
//! can set (security labels aside: they need a label provider module, which stock PostgreSQL does
//! not ship) and the usual schema objects — partitions, domains, enums, composite types, identity
//! and generated columns, triggers, functions, procedures, views, materialized views, extensions,
//! row-level security, unlogged tables, odd sequences, large objects, grants, default privileges,
//! non-ASCII names, a LATIN1 database. [`exercised`] checks that a snapshot of it really holds all of that, so a
//! comparison that passes has compared something.

use super::InstanceSnapshot;
use crate::cluster::ConnParams;
use toygres_core::{Error, Password, Result};

/// The database carrying most properties (non-ASCII name, C collation).
pub const MAIN_DB: &str = "fidélité ü";

/// What the corpus server can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorpusOptions {
    /// Whether the server (and every server the image is restored on) is built with ICU: adds a
    /// database with the ICU locale provider.
    pub icu: bool,
}

const GLOBALS: &[&str] = &[
    "CREATE ROLE corpus_owner LOGIN PASSWORD 'owner-pw-1' CREATEDB CONNECTION LIMIT 5 VALID UNTIL '2099-01-01 00:00:00+00'",
    "CREATE ROLE corpus_reader NOLOGIN",
    "CREATE ROLE corpus_admin LOGIN NOINHERIT CREATEROLE BYPASSRLS REPLICATION PASSWORD 'admin-pw-2'",
    "CREATE ROLE \"rôle ünïcode\" LOGIN",
    "GRANT corpus_reader TO corpus_owner",
    "GRANT corpus_reader TO corpus_admin WITH ADMIN OPTION",
    "ALTER ROLE corpus_owner SET search_path = app, public",
    "ALTER ROLE corpus_reader SET statement_timeout = '30s'",
    "CREATE DATABASE \"fidélité ü\" OWNER corpus_owner TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' CONNECTION LIMIT 7",
    "ALTER DATABASE \"fidélité ü\" SET work_mem = '7MB'",
    "ALTER DATABASE \"fidélité ü\" SET search_path = app, public",
    "ALTER ROLE corpus_reader IN DATABASE \"fidélité ü\" SET statement_timeout = '5s'",
    "COMMENT ON DATABASE \"fidélité ü\" IS 'corpus: every database property'",
    "REVOKE CONNECT, TEMPORARY ON DATABASE \"fidélité ü\" FROM PUBLIC",
    "GRANT CONNECT ON DATABASE \"fidélité ü\" TO corpus_reader",
    "GRANT CREATE ON DATABASE \"fidélité ü\" TO corpus_admin WITH GRANT OPTION",
    "CREATE DATABASE corpus_template OWNER corpus_owner IS_TEMPLATE true",
    "CREATE DATABASE corpus_closed OWNER corpus_owner",
    "CREATE DATABASE corpus_latin1 TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'",
    "ALTER DATABASE postgres SET work_mem = '3MB'",
    "COMMENT ON DATABASE postgres IS 'the maintenance database'",
];

const MAIN: &str = "
CREATE EXTENSION citext;
CREATE EXTENSION hstore;
SET ROLE corpus_owner;
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy', 'ünïcode');
CREATE DOMAIN app.positive AS integer CHECK (VALUE > 0);
CREATE TYPE app.pair AS (a int, b text);
CREATE SEQUENCE app.countdown INCREMENT -3 MINVALUE -100 MAXVALUE 100 START 10 CYCLE;
SELECT nextval('app.countdown'), nextval('app.countdown');
CREATE SEQUENCE app.untouched START 42;
CREATE SEQUENCE app.reset;
SELECT setval('app.reset', 500, false);
CREATE TABLE app.people (
  id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name citext NOT NULL UNIQUE, mood app.mood,
  score app.positive, attrs hstore, pair app.pair,
  name_len int GENERATED ALWAYS AS (length(name::text)) STORED, sort_key text COLLATE \"C\");
INSERT INTO app.people (name, mood, score, attrs, pair, sort_key)
  SELECT 'Person ' || g || CASE WHEN g % 7 = 0 THEN ' Ærø' ELSE '' END, (ARRAY['sad','ok','happy','ünïcode'])[1 + g % 4]::app.mood,
         1 + g % 50, hstore('k' || g % 3, 'v' || g), ROW(g, 'b' || g)::app.pair, 'Zz' || g
  FROM generate_series(1, 300) g;
CREATE TABLE app.events (id bigint, at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.events_other PARTITION OF app.events DEFAULT;
CREATE INDEX events_at ON app.events (at);
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.what := coalesce(NEW.what, 'touched'); RETURN NEW; END $$;
CREATE TRIGGER events_touch BEFORE INSERT ON app.events FOR EACH ROW EXECUTE FUNCTION app.touch();
INSERT INTO app.events SELECT g, date '2024-06-01' + g, CASE WHEN g % 2 = 0 THEN 'event ' || g END
  FROM generate_series(1, 900) g;
CREATE UNLOGGED TABLE app.scratch (k text PRIMARY KEY, v jsonb);
INSERT INTO app.scratch SELECT 'key ' || g, jsonb_build_object('n', g, 'ü', true) FROM generate_series(1, 50) g;
CREATE TABLE app.secrets (owner_name text, note text);
INSERT INTO app.secrets VALUES ('corpus_owner', 'mine'), ('corpus_reader', 'theirs');
ALTER TABLE app.secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON app.secrets USING (owner_name = current_user);
CREATE PROCEDURE app.bump(n int) LANGUAGE sql AS $$ UPDATE app.people SET score = score + n WHERE id = 1 $$;
CREATE VIEW app.happy_people AS SELECT name FROM app.people WHERE mood = 'happy';
CREATE MATERIALIZED VIEW app.mood_counts AS SELECT mood, count(*) AS n FROM app.people GROUP BY mood;
COMMENT ON TABLE app.people IS 'people — with ünïcode';
GRANT USAGE ON SCHEMA app TO corpus_reader;
GRANT SELECT ON app.people TO corpus_reader;
GRANT SELECT (note) ON app.secrets TO corpus_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO corpus_reader;
CREATE SCHEMA \"ñ\";
CREATE TABLE \"ñ\".\"tablé ☃\" (v text COLLATE \"C\");
INSERT INTO \"ñ\".\"tablé ☃\" VALUES ('b'), ('B'), ('ä'), ('a');
SELECT lo_from_bytea(777001, convert_to('corpus large object ☃', 'UTF8'));
COMMENT ON LARGE OBJECT 777001 IS 'a commented large object';
GRANT SELECT ON LARGE OBJECT 777001 TO corpus_reader;
RESET ROLE;
";

/// Loads the corpus into the empty cluster at `params` as its superuser.
pub async fn load_corpus(params: &ConnParams, password: &Password, options: CorpusOptions) -> Result<()> {
    let run = |db: &'static str, sql: String| async move {
        let client = params.connect(db, password).await?;
        client.batch_execute(&sql).await.map_err(|e| Error::backend("corpus", format!("loading into {db}: {sql}"), e))
    };
    for statement in GLOBALS {
        run("postgres", statement.to_string()).await?;
    }
    if options.icu {
        let icu =
            "CREATE DATABASE corpus_icu TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C.UTF-8'";
        run("postgres", icu.into()).await?;
        run(
            "corpus_icu",
            "CREATE TABLE words (w text); INSERT INTO words VALUES ('Äpfel'), ('apfel'), ('Zebra');".into(),
        )
        .await?;
    }
    run(MAIN_DB, MAIN.into()).await?;
    run(
        "corpus_template",
        "CREATE TABLE blueprint (id int PRIMARY KEY, body text); INSERT INTO blueprint VALUES (1, 'copy me');".into(),
    )
    .await?;
    run("corpus_closed", "CREATE TABLE archive (id int, body text); INSERT INTO archive SELECT g, 'old ' || g FROM generate_series(1, 40) g;".into()).await?;
    run("postgres", "ALTER DATABASE corpus_closed ALLOW_CONNECTIONS false".into()).await?;
    // Stored in LATIN1 (the server converts from the client's UTF-8).
    let latin1 =
        "CREATE TABLE \"mots_é\" (w text PRIMARY KEY); INSERT INTO \"mots_é\" VALUES ('café'), ('Ærø'), ('¿qué?');";
    run("corpus_latin1", latin1.into()).await?;
    run(
        "template1",
        "CREATE TABLE public.from_template1 (k int); INSERT INTO public.from_template1 VALUES (1);".into(),
    )
    .await?;
    run("postgres", "COMMENT ON DATABASE template1 IS 'template with a table'".into()).await
}

/// What of the corpus is missing from `snapshot` (empty: the snapshot holds every property and
/// object kind the corpus sets, so comparing it compares all of them).
pub fn exercised(snapshot: &InstanceSnapshot, options: CorpusOptions) -> Vec<String> {
    let mut missing = Vec::new();
    let mut expect = |ok: bool, what: &str| {
        if !ok {
            missing.push(what.to_string());
        }
    };
    let prop =
        |db: &str, p: &str| snapshot.databases.get(db).and_then(|d| d.properties.get(p)).cloned().unwrap_or_default();
    expect(prop(MAIN_DB, "owner") == "corpus_owner", "owner of the main database");
    expect(prop(MAIN_DB, "encoding") == "UTF8", "encoding");
    expect(prop(MAIN_DB, "lc_collate") == "C" && prop(MAIN_DB, "lc_ctype") == "C", "LC_COLLATE/LC_CTYPE C");
    expect(prop(MAIN_DB, "connection_limit") == "7", "connection limit");
    expect(prop(MAIN_DB, "acl").contains("corpus_reader=c/"), "database ACL (GRANT CONNECT)");
    expect(!prop(MAIN_DB, "acl").contains("=Tc/"), "database ACL (REVOKE from PUBLIC)");
    expect(prop(MAIN_DB, "acl").contains("corpus_admin=C*/"), "database ACL with grant option");
    expect(prop(MAIN_DB, "comment").starts_with("corpus"), "database comment");
    expect(prop(MAIN_DB, "settings").contains("work_mem=7MB"), "ALTER DATABASE … SET");
    expect(
        prop(MAIN_DB, "role_settings").contains("corpus_reader:statement_timeout=5s"),
        "ALTER ROLE … IN DATABASE … SET",
    );
    expect(prop("corpus_closed", "allow_connections") == "false", "datallowconn false");
    expect(prop("corpus_template", "is_template") == "true", "datistemplate");
    expect(prop("corpus_latin1", "encoding") == "LATIN1", "a database in another encoding than UTF-8");
    expect(prop("postgres", "settings").contains("work_mem=3MB"), "settings of postgres");
    expect(!prop("template1", "comment").is_empty(), "comment on template1");
    if options.icu {
        expect(prop("corpus_icu", "locale_provider") == "i", "ICU locale provider");
        expect(prop("corpus_icu", "provider_locale") == "de-DE", "ICU locale");
    }
    let role =
        |name: &str| snapshot.roles.iter().find(|r| r.starts_with(&format!("{name} "))).cloned().unwrap_or_default();
    expect(role("corpus_owner").contains("connlimit=5") && role("corpus_owner").contains("2099"), "role limits");
    expect(role("corpus_owner").contains("settings=search_path=app, public"), "ALTER ROLE … SET");
    expect(role("corpus_admin").contains("replication=t bypassrls=t"), "role attributes");
    expect(!role("rôle ünïcode").is_empty(), "non-ASCII role");
    expect(snapshot.memberships.iter().any(|m| m == "corpus_admin in corpus_reader admin=t"), "ADMIN OPTION");
    let main = snapshot.databases.get(MAIN_DB);
    let schema = main.map(|d| d.schema.as_str()).unwrap_or("");
    for object in [
        "CREATE EXTENSION IF NOT EXISTS citext",
        "CREATE TYPE app.mood AS ENUM",
        "CREATE DOMAIN app.positive",
        "GENERATED ALWAYS AS IDENTITY",
        "ATTACH PARTITION app.events_2025",
        "CREATE TRIGGER events_touch",
        "CREATE PROCEDURE app.bump",
        "CREATE MATERIALIZED VIEW app.mood_counts",
        "CREATE UNLOGGED TABLE app.scratch",
        "CREATE POLICY own_rows",
        "FORCE ROW LEVEL SECURITY",
        "ALTER DEFAULT PRIVILEGES",
    ] {
        expect(schema.contains(object), object);
    }
    let sequences = main.map(|d| d.sequences.clone()).unwrap_or_default();
    expect(sequences.get("app.untouched").map(String::as_str) == Some("42 f"), "sequence never called");
    expect(sequences.get("app.countdown").map(String::as_str) == Some("7 t"), "descending cycling sequence");
    let los = main.map(|d| d.large_objects.clone()).unwrap_or_default();
    expect(
        los.iter().any(|l| l.contains("corpus_reader=r/") && l.contains("commented")),
        "large object ACL and comment",
    );
    let rows = |db: &str, t: &str| snapshot.databases.get(db).and_then(|d| d.tables.get(t)).map(|t| t.0).unwrap_or(0);
    expect(rows(MAIN_DB, "app.events_2025") > 0 && rows(MAIN_DB, "app.scratch") == 50, "partition and unlogged rows");
    expect(rows("corpus_closed", "public.archive") == 40, "rows of the database refusing connections");
    expect(rows("template1", "public.from_template1") == 1, "rows in template1");
    expect(rows("corpus_latin1", "public.\"mots_é\"") == 3, "rows of the LATIN1 database");
    missing
}
