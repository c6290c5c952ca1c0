//! The differences between two PostgreSQL builds that the comparator tolerates, each named with
//! the reason. Everything not listed here is reported.
//!
//! **Server-internal attribute options** ([`SERVER_INTERNAL_ATTRIBUTE_OPTIONS`]): options a
//! server puts on columns by itself, which no SQL a logical restore runs can give to the copy,
//! and which the copy must not carry anyway (they describe the server that made them, not the
//! data). Today there is one:
//! - `pg_attver`: Debian's PostgreSQL 15.20 (security update of 2026-11-13) gives every column
//!   `attoptions = {pg_attver=<n>}`, a number per table. PostgreSQL 15.20's own `pg_dump` does not
//!   print it; PostgreSQL 18's `pg_dump`, pointed at a 15.20 server, prints
//!   `ALTER TABLE ONLY … ALTER COLUMN … SET (pg_attver=<n>)`. A restored 15.20 server numbers its
//!   tables anew and an 18 server has none, so a logical copy can never match it.
//!
//! User-set attribute options (`n_distinct`, `n_distinct_inherited`) are part of the schema and
//! still compared: only the names above are removed, the rest of such a statement is kept.

/// Attribute options a server sets by itself; the schema comparison leaves them out.
pub const SERVER_INTERNAL_ATTRIBUTE_OPTIONS: &[&str] = &["pg_attver"];

/// `schema` (a `pg_dump --schema-only` text) without the [`SERVER_INTERNAL_ATTRIBUTE_OPTIONS`]:
/// each is taken out of its `ALTER … ALTER COLUMN … SET (…);` statement, and a statement left
/// with no option goes away. Every other line is kept as it is.
///
/// ```
/// use toygres_local::fidelity::tolerated::without_server_internal_options;
/// let dump = "ALTER TABLE ONLY public.t ALTER COLUMN a SET (pg_attver=7);\n\
///             ALTER TABLE ONLY public.t ALTER COLUMN b SET (n_distinct=5, pg_attver=7);";
/// assert_eq!(without_server_internal_options(dump), "ALTER TABLE ONLY public.t ALTER COLUMN b SET (n_distinct=5);");
/// ```
pub fn without_server_internal_options(schema: &str) -> String {
    schema.lines().filter_map(strip_line).collect::<Vec<_>>().join("\n")
}

/// The line without the tolerated options; `None` when nothing of the statement is left.
fn strip_line(line: &str) -> Option<String> {
    let Some((head, options)) = attribute_options(line) else { return Some(line.to_string()) };
    let kept: Vec<&str> = options.split(", ").filter(|o| !is_server_internal(o)).collect();
    match kept.len() {
        0 => None,
        n if n == options.split(", ").count() => Some(line.to_string()),
        _ => Some(format!("{head} SET ({});", kept.join(", "))),
    }
}

/// `(statement head, options)` of an `ALTER … ALTER COLUMN … SET (options);` line.
fn attribute_options(line: &str) -> Option<(&str, &str)> {
    if !line.starts_with("ALTER ") || !line.contains(" ALTER COLUMN ") {
        return None;
    }
    let body = line.strip_suffix(");")?;
    let at = body.rfind(" SET (")?;
    Some((&body[..at], &body[at + " SET (".len()..]))
}

fn is_server_internal(option: &str) -> bool {
    let name = option.split_once('=').map_or(option, |(name, _)| name);
    SERVER_INTERNAL_ATTRIBUTE_OPTIONS.contains(&name.trim())
}

#[cfg(test)]
mod tests {
    use super::without_server_internal_options as strip;

    #[test]
    fn a_statement_of_only_server_internal_options_goes_away() {
        let dump = "CREATE TABLE public.t (\n    a integer\n);\n\
                    ALTER TABLE ONLY public.t ALTER COLUMN a SET (pg_attver=22158952);\n\
                    ALTER TABLE public.p ALTER COLUMN \"odd SET (x\" SET (pg_attver=1);";
        assert_eq!(strip(dump), "CREATE TABLE public.t (\n    a integer\n);");
    }

    #[test]
    fn user_set_options_stay_beside_a_removed_one() {
        let line = "ALTER TABLE ONLY public.t ALTER COLUMN a SET (pg_attver=3, n_distinct='-0.5');";
        assert_eq!(strip(line), "ALTER TABLE ONLY public.t ALTER COLUMN a SET (n_distinct='-0.5');");
        let untouched = "ALTER TABLE ONLY public.t ALTER COLUMN a SET (n_distinct=100);";
        assert_eq!(strip(untouched), untouched);
        let other = "ALTER TABLE ONLY public.t ALTER COLUMN a SET STATISTICS 500;";
        assert_eq!(strip(other), other);
    }

    #[test]
    fn another_attribute_option_that_differs_is_still_a_difference() {
        // Two dumps of the same table from different servers: the tolerated option differs, and
        // so does a user-set one. Only the tolerated one may disappear.
        let source = "ALTER TABLE ONLY public.t ALTER COLUMN a SET (n_distinct=100, pg_attver=11);";
        let copy = "ALTER TABLE ONLY public.t ALTER COLUMN a SET (n_distinct=5, pg_attver=99);";
        assert_ne!(strip(source), strip(copy));
        let copy_without_option = "";
        assert_ne!(strip(source), strip(copy_without_option));
        // And the same user-set option on both sides compares equal whatever pg_attver says.
        let copy_same = "ALTER TABLE ONLY public.t ALTER COLUMN a SET (n_distinct=100);";
        assert_eq!(strip(source), strip(copy_same));
    }
}
