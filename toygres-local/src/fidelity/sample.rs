//! Sample data covering what an image must carry: two databases owned by a non-superuser role,
//! several schemas, indexes, views, functions, sequences, a large object and non-ASCII text.

use crate::cluster::ConnParams;
use toygres_core::{Error, Password, Result};

/// The non-superuser role owning the sample objects.
pub const SAMPLE_OWNER: &str = "app_owner";
/// The sample databases.
pub const SAMPLE_DATABASES: &[&str] = &["appdb", "shopdb"];

const GLOBALS: &str = "
CREATE ROLE app_owner LOGIN PASSWORD 'owner-secret-1';
CREATE ROLE app_reader NOLOGIN;
GRANT app_reader TO app_owner;
CREATE DATABASE appdb OWNER app_owner;
CREATE DATABASE shopdb OWNER app_owner TEMPLATE template0 ENCODING 'UTF8';
";

const APPDB: &str = "
SET ROLE app_owner;
CREATE SCHEMA billing;
CREATE SCHEMA audit;
CREATE SEQUENCE billing.invoice_no START 1000 INCREMENT 7;
CREATE TABLE billing.customers (
  id bigserial PRIMARY KEY, name text NOT NULL, city text, created date DEFAULT '2024-01-01');
CREATE TABLE billing.invoices (
  id bigint PRIMARY KEY DEFAULT nextval('billing.invoice_no'),
  customer_id bigint REFERENCES billing.customers(id), amount numeric(12,2), note text);
CREATE INDEX invoices_customer ON billing.invoices (customer_id);
CREATE UNIQUE INDEX customers_name_city ON billing.customers (name, city);
INSERT INTO billing.customers (name, city) VALUES
  ('Zoë Łukasiewicz', 'Kraków'), ('Jürgen Groß', 'München'), ('山田太郎', '東京'),
  ('Ana Peña', 'Málaga'), ('Олег', 'Москва');
INSERT INTO billing.customers (name, city) SELECT 'customer ' || g, 'city ' || (g % 17) FROM generate_series(1, 500) g;
INSERT INTO billing.invoices (customer_id, amount, note)
  SELECT 1 + g % 505, (g * 13.37)::numeric(12,2), CASE WHEN g % 3 = 0 THEN 'señal ✓ €' END
  FROM generate_series(1, 2000) g;
CREATE VIEW billing.big_spenders AS
  SELECT c.name, sum(i.amount) AS total FROM billing.customers c JOIN billing.invoices i ON i.customer_id = c.id
  GROUP BY c.name HAVING sum(i.amount) > 10000;
CREATE FUNCTION billing.total_for(cust bigint) RETURNS numeric LANGUAGE sql STABLE
  AS 'SELECT coalesce(sum(amount), 0) FROM billing.invoices WHERE customer_id = cust';
CREATE TABLE audit.events (at timestamptz DEFAULT '2024-01-01 00:00:00+00', what jsonb);
CREATE FUNCTION audit.log_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit.events (what) VALUES (to_jsonb(NEW)); RETURN NEW; END $$;
CREATE TRIGGER invoices_audit AFTER INSERT ON billing.invoices FOR EACH ROW EXECUTE FUNCTION audit.log_invoice();
INSERT INTO billing.invoices (customer_id, amount, note) VALUES (3, 42.00, 'über-naïve façade');
GRANT USAGE ON SCHEMA billing TO app_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA billing TO app_reader;
SELECT lo_from_bytea(424242, convert_to('large object: ünïcödé ☃', 'UTF8'));
RESET ROLE;
";

const SHOPDB: &str = "
SET ROLE app_owner;
CREATE SCHEMA catalog;
CREATE TABLE catalog.products (sku text PRIMARY KEY, title text NOT NULL, price numeric, tags text[]);
INSERT INTO catalog.products SELECT 'sku-' || g, 'Produkt Nr. ' || g || ' – Größe ' || (g % 5), g * 1.5,
  ARRAY['tag' || (g % 3), 'étiquette'] FROM generate_series(1, 300) g;
CREATE INDEX products_title ON catalog.products USING btree (lower(title));
CREATE MATERIALIZED VIEW catalog.cheap AS SELECT sku, price FROM catalog.products WHERE price < 50;
CREATE TABLE public.notes (id serial PRIMARY KEY, body text);
INSERT INTO public.notes (body) VALUES ('ночь'), ('夜'), ('nuit');
RESET ROLE;
";

/// Loads the sample data into the cluster at `params` (as its superuser with `password`).
/// Fails if it was loaded already.
pub async fn load_sample_data(params: &ConnParams, password: &Password) -> Result<()> {
    let run = |db: &'static str, sql: &'static str| async move {
        let sql = sql.to_string();
        let client = params.connect(db, password).await?;
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| Error::backend("sample data", format!("loading the sample data into {db}"), e))
    };
    for statement in GLOBALS.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        // CREATE DATABASE cannot run in the implicit transaction of a multi-statement batch.
        run("postgres", statement).await?;
    }
    run("appdb", APPDB).await?;
    run("shopdb", SHOPDB).await?;
    run("postgres", "CREATE TABLE public.in_postgres (k text PRIMARY KEY, v text); INSERT INTO in_postgres VALUES ('ключ', 'значение');")
        .await
}
