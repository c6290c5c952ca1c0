//! The cluster-wide part of a snapshot: roles with every attribute, their password hashes, their
//! settings and their memberships.

use super::{query_lines, WHO};
use tokio_postgres::Client;
use toygres_core::Result;

/// One line per role (built-in `pg_*` roles left out): name, every `pg_authid` attribute, md5 of
/// its password hash, and its own settings (`ALTER ROLE … SET`).
const ROLES: &str = "SELECT format('%s super=%s inherit=%s createrole=%s createdb=%s login=%s replication=%s \
     bypassrls=%s connlimit=%s valid_until=%s pw=%s settings=%s', r.rolname, r.rolsuper, r.rolinherit, \
     r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication, r.rolbypassrls, r.rolconnlimit, \
     r.rolvaliduntil, md5(coalesce(r.rolpassword, '')), \
     (SELECT array_to_string(s.setconfig, ',') FROM pg_db_role_setting s \
      WHERE s.setrole = r.oid AND s.setdatabase = 0)) \
     FROM pg_authid r WHERE r.rolname NOT LIKE 'pg\\_%' ORDER BY r.rolname";

/// One line per membership between non-built-in roles, with its admin option. (PostgreSQL 16's
/// per-membership INHERIT/SET options and grantors are left out, so that images taken on 15 compare
/// equal after a restore onto 16+, which gives them their defaults.)
const MEMBERSHIPS: &str = "SELECT format('%s in %s admin=%s', m.member::regrole, m.roleid::regrole, m.admin_option) \
     FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member \
     WHERE r.rolname NOT LIKE 'pg\\_%' AND u.rolname NOT LIKE 'pg\\_%' ORDER BY 1";

/// Roles and memberships as lines, sorted.
pub(super) async fn roles(client: &Client) -> Result<(Vec<String>, Vec<String>)> {
    let roles = query_lines(client, ROLES, WHO).await?;
    let memberships = query_lines(client, MEMBERSHIPS, WHO).await?;
    Ok((roles, memberships))
}
