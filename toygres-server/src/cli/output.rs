//! Printing records: the server's JSON with `--json`, otherwise short text.

use super::wait::Kind;
use serde_json::Value;

/// Prints a list of records.
pub fn print_list(kind: Kind, records: &[Value], json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(records).unwrap_or_default());
        return;
    }
    if records.is_empty() {
        println!("no {}", if kind == Kind::Instance { "instances" } else { "images" });
    }
    for record in records {
        println!("{}", line(kind, record));
    }
}

/// Prints one record.
pub fn print_one(kind: Kind, record: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(record).unwrap_or_default());
        return;
    }
    println!("{}", line(kind, record));
    if let Some(reason) = record["failure_reason"].as_str() {
        println!("  failed: {reason}");
    }
}

/// Confirms a deletion.
pub fn deleted(kind: Kind, id: &str, json: bool) {
    if json {
        println!("{}", serde_json::json!({ "id": id, "deleted": true }));
    } else {
        println!("deleted {} {id}", if kind == Kind::Instance { "instance" } else { "image" });
    }
}

fn line(kind: Kind, r: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let detail = match kind {
        Kind::Instance => match r["connection"].as_object() {
            Some(c) => {
                let url =
                    format!("postgresql://{}@{}:{}/{}", s(&c["user"]), s(&c["host"]), c["port"], s(&c["database"]));
                match c.get("ssl_mode").and_then(Value::as_str) {
                    Some(mode) => format!("{url}?sslmode={mode}"),
                    None => url,
                }
            }
            None => String::new(),
        },
        Kind::Image => match r["size_bytes"].as_u64() {
            Some(size) => format!("{:<9} {size} bytes {}", s(&r["format"]), s(&r["checksum"])),
            None => s(&r["format"]),
        },
    };
    let name = if r["name"].is_string() { s(&r["name"]) } else { String::new() };
    format!("{}  {:<24} {:<13} {detail}", s(&r["id"]), name, s(&r["state"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An instance that accepts TLS only says so in its connection string.
    #[test]
    fn an_instance_line_carries_the_ssl_mode() {
        let mut r = json!({"id": "i", "name": "n", "state": "running",
            "connection": {"host": "h", "port": 5432, "user": "postgres", "database": "postgres"}});
        assert!(line(Kind::Instance, &r).ends_with(" postgresql://postgres@h:5432/postgres"));
        r["connection"]["ssl_mode"] = json!("require");
        assert!(line(Kind::Instance, &r).ends_with(" postgresql://postgres@h:5432/postgres?sslmode=require"));
    }
}
