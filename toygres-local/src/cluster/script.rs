//! SQL scripts from an image (globals, a database's own SQL), run statement by statement over a
//! connection: never through `psql`, whose meta-commands (`\!` runs a shell command as the user
//! running psql) an image could carry, and never as a local OS user at all.

use super::ConnParams;
use toygres_core::{Error, Password, Result};

/// What a script may hold besides SQL: the guard lines `pg_dump` writes for psql (`\restrict
/// <key>` … `\unrestrict <key>`), which mean nothing to a server and are skipped. Any other
/// meta-command refuses the whole script.
const SKIPPED_META_COMMANDS: &[&str] = &["\\restrict", "\\unrestrict"];

/// The statements of `script`, each ending with its `;`, without comments between them and
/// without `SET client_encoding …` (the connection always speaks UTF-8). Quotes (`'…'`, `E'…'`,
/// `"…"`), dollar quotes and comments are respected, so a `;` inside them ends nothing.
///
/// Errors with [`Error::Corrupt`] (before anything runs) on a psql meta-command other than
/// `SKIPPED_META_COMMANDS` or an unterminated quote or comment: SQL from an image is
/// authenticated data, and such a line means it was crafted.
pub fn statements(script: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut rest = script;
    while !rest.is_empty() {
        // Outside quotes and comments a backslash starts a meta-command, as in psql.
        if rest.starts_with('\\') {
            let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
            let command = line.split_whitespace().next().unwrap_or("");
            if !SKIPPED_META_COMMANDS.contains(&command) {
                let shown: String = command.chars().take(20).collect();
                return Err(Error::Corrupt(format!(
                    "the image's SQL holds the psql meta-command {shown:?}; toygres runs no client commands from an image"
                )));
            }
            rest = after;
            continue;
        }
        let len = token_len(rest)?;
        let (token, after) = rest.split_at(len);
        rest = after;
        if token.starts_with("--") || token.starts_with("/*") {
            continue;
        }
        current.push_str(token);
        if token == ";" {
            let statement = std::mem::take(&mut current).trim().to_string();
            if !is_client_encoding(&statement) {
                out.push(statement);
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    Ok(out)
}

/// Runs `script` ([`statements`]) on database `database` at `params`, one statement at a time
/// (`CREATE DATABASE` cannot run inside a transaction), stopping at the first error. The error
/// names the statement's position, never its text (globals hold password hashes).
pub async fn run_script(params: &ConnParams, password: &Password, database: &str, script: &str) -> Result<()> {
    let statements = statements(script)?;
    if statements.is_empty() {
        return Ok(());
    }
    let client = params.connect(database, password).await?;
    for (i, statement) in statements.iter().enumerate() {
        client.batch_execute(statement).await.map_err(|e| {
            let reason = e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_string());
            Error::backend_msg("local cluster", format!("statement {} of {} failed: {reason}", i + 1, statements.len()))
        })?;
    }
    Ok(())
}

fn is_client_encoding(statement: &str) -> bool {
    let words: Vec<String> = statement.split_whitespace().take(2).map(str::to_ascii_lowercase).collect();
    words.len() == 2 && words[0] == "set" && words[1].starts_with("client_encoding")
}

/// The length of the token at the start of `s`: a quoted string or identifier, a dollar-quoted
/// string, a comment, or one character.
fn token_len(s: &str) -> Result<usize> {
    let unterminated = |what: &str| Error::Corrupt(format!("the image's SQL has an unterminated {what}"));
    let bytes = s.as_bytes();
    match bytes[0] {
        b'\'' => quoted_len(s, b'\'', false).ok_or_else(|| unterminated("string")),
        b'"' => quoted_len(s, b'"', false).ok_or_else(|| unterminated("quoted identifier")),
        b'E' | b'e' if bytes.get(1) == Some(&b'\'') => {
            quoted_len(&s[1..], b'\'', true).map(|n| n + 1).ok_or_else(|| unterminated("string"))
        }
        b'-' if bytes.get(1) == Some(&b'-') => Ok(s.find('\n').map_or(s.len(), |n| n + 1)),
        b'/' if bytes.get(1) == Some(&b'*') => s[2..].find("*/").map(|n| n + 4).ok_or_else(|| unterminated("comment")),
        b'$' => match dollar_tag(s) {
            Some(tag) => s[tag.len()..].find(tag).map(|n| n + 2 * tag.len()).ok_or_else(|| unterminated("$ string")),
            None => Ok(1),
        },
        _ => Ok(s.chars().next().map_or(1, char::len_utf8)),
    }
}

/// The length of a string quoted with `quote` at the start of `s` (a doubled quote stands for
/// itself; with `backslash`, `\x` too); `None` when it never ends.
fn quoted_len(s: &str, quote: u8, backslash: bool) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The dollar-quote tag (`$$`, `$body$`) at the start of `s`, if it starts one.
fn dollar_tag(s: &str) -> Option<&str> {
    let end = s[1..].find(|c: char| !(c.is_alphanumeric() || c == '_'))? + 1;
    (s.as_bytes().get(end) == Some(&b'$') && !s[1..end].starts_with(|c: char| c.is_ascii_digit())).then(|| &s[..=end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        let script = "\\restrict AbC123\nSET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n\
                      -- a comment; not a statement\nCREATE ROLE \"we;ird\";\n\
                      COMMENT ON DATABASE app IS 'it''s; here\nand there';\n\
                      COMMENT ON ROLE r IS E'a\\'; b';\n/* block; */ CREATE FUNCTION f() RETURNS int AS $f$ SELECT 1; $f$ LANGUAGE sql;\n\
                      ALTER ROLE r PASSWORD 'SCRAM-SHA-256$4096:abc$def'\n\\unrestrict AbC123\n";
        assert_eq!(
            statements(script).unwrap(),
            vec![
                "SET standard_conforming_strings = on;",
                "CREATE ROLE \"we;ird\";",
                "COMMENT ON DATABASE app IS 'it''s; here\nand there';",
                "COMMENT ON ROLE r IS E'a\\'; b';",
                "CREATE FUNCTION f() RETURNS int AS $f$ SELECT 1; $f$ LANGUAGE sql;",
                "ALTER ROLE r PASSWORD 'SCRAM-SHA-256$4096:abc$def'",
            ]
        );
    }

    #[test]
    fn any_other_meta_command_refuses_the_script() {
        for script in [
            "\\! touch /tmp/x\n",
            "SELECT 1;\n\\connect other\n",
            "SELECT 1;\n  \\! id\n",
            "SELECT 1 \\! id\n",
            "\\copy t from x\n",
        ] {
            let err = statements(script).unwrap_err();
            assert!(matches!(err, Error::Corrupt(_)), "{script:?}: {err}");
        }
        // Inside a literal a backslash line is data, not a command.
        assert_eq!(statements("COMMENT ON ROLE r IS 'x\n\\! no';\n").unwrap().len(), 1);
    }

    #[test]
    fn an_unterminated_quote_or_comment_is_corrupt() {
        for script in ["SELECT 'open;\n", "SELECT \"open;\n", "SELECT $x$ open;\n", "/* open;\n", "SELECT E'a\\';\n"] {
            assert!(matches!(statements(script), Err(Error::Corrupt(_))), "{script:?}");
        }
    }
}
