//! `toygres instances protect|unprotect|recovery-window|restore-point|restore-pitr`: continuous
//! protection of an instance and new instances at a moment of its WAL archive.

use super::client::Client;
use super::{finish, labels_object, wait};
use clap::Subcommand;
use serde_json::{json, Value};
use std::process::ExitCode;

/// The point-in-time subcommands of `toygres instances`.
#[derive(Debug, Subcommand)]
pub enum PitrCommand {
    /// Start archiving a running instance's WAL (idempotent); starts its first base image
    /// (a physical image) when none is usable yet.
    Protect {
        /// Id or name.
        id: String,
        /// Wait until the base image it started is ready (or failed).
        #[arg(long)]
        wait: bool,
    },
    /// Stop archiving an instance's WAL (the archive stays restorable while its base images do).
    Unprotect {
        /// Id or name.
        id: String,
    },
    /// Show the moments a protected instance can be restored to: earliest, latest, RPO.
    RecoveryWindow {
        /// Id or name.
        id: String,
    },
    /// Create a named restore point on a protected, running instance.
    RestorePoint {
        /// The instance (id or name).
        id: String,
        /// The restore point's name (1-63 printable ASCII characters).
        name: String,
    },
    /// Restore a protected instance as a new instance at a time, an LSN, a restore point, or
    /// (none of them) the latest moment its archive holds.
    RestorePitr {
        /// Name of the new instance (a-z, 0-9, -).
        name: String,
        /// The protected instance (id or name).
        #[arg(long)]
        from: String,
        /// Every transaction committed at or before this moment (RFC 3339, e.g. 2026-12-05T10:00:00Z).
        #[arg(long, conflicts_with_all = ["lsn", "restore_point"])]
        time: Option<String>,
        /// Up to and including the WAL record at this position (e.g. 0/3000148).
        #[arg(long, conflicts_with = "restore_point")]
        lsn: Option<String>,
        /// Up to this restore point.
        #[arg(long)]
        restore_point: Option<String>,
        /// DNS label of the public endpoint.
        #[arg(long)]
        dns_label: Option<String>,
        /// Labels, as `key=value` pairs joined by commas.
        #[arg(long, value_name = "KEY=VALUE,...")]
        labels: Option<String>,
        /// Wait until it runs (or fails), with a progress bar.
        #[arg(long)]
        wait: bool,
    },
}

/// Runs a point-in-time subcommand.
pub async fn run(client: Client, command: PitrCommand, json: bool) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match command {
        PitrCommand::Protect { id, wait } => {
            let answer = client.post(&format!("/api/instances/{id}/protection"), &json!({})).await?;
            print_protection(&answer, json);
            match answer["base_image"]["id"].as_str() {
                Some(image) if wait => {
                    let record = wait::until_settled(&client, wait::Kind::Image, image, json).await?;
                    super::output::print_one(wait::Kind::Image, &record, json);
                    Ok(if record["state"] == "failed" { ExitCode::FAILURE } else { ExitCode::SUCCESS })
                }
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        PitrCommand::Unprotect { id } => {
            print_protection(&client.delete(&format!("/api/instances/{id}/protection")).await?, json);
            Ok(ExitCode::SUCCESS)
        }
        PitrCommand::RecoveryWindow { id } => {
            let window = client.get(&format!("/api/instances/{id}/recovery-window")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&window).unwrap_or_default());
            } else {
                print!("{}", window_text(&window));
            }
            Ok(ExitCode::SUCCESS)
        }
        PitrCommand::RestorePoint { id, name } => {
            let point = client.post(&format!("/api/instances/{id}/restore-points"), &json!({ "name": name })).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&point).unwrap_or_default());
            } else {
                println!("restore point {} at LSN {} ({})", s(&point["name"]), s(&point["lsn"]), s(&point["time"]));
            }
            Ok(ExitCode::SUCCESS)
        }
        PitrCommand::RestorePitr { name, from, time, lsn, restore_point, dns_label, labels, wait } => {
            // The API takes the protected instance's id; a name is looked up.
            let from = match from.parse::<uuid::Uuid>() {
                Ok(id) => id.to_string(),
                Err(_) => s(&client.get(&format!("/api/instances/{from}")).await?["id"]),
            };
            let point = json!({ "instance_id": from, "time": time, "lsn": lsn, "restore_point": restore_point });
            let mut body = json!({ "name": name, "point_in_time": point, "labels": labels_object(labels.as_deref())? });
            if let Some(label) = dns_label {
                body["dns_label"] = json!(label);
            }
            let created = client.post("/api/instances", &body).await?;
            finish(&client, wait::Kind::Instance, created, wait, json).await
        }
    }
}

fn s(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| if v.is_null() { "-".into() } else { v.to_string() })
}

fn print_protection(answer: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(answer).unwrap_or_default());
        return;
    }
    let p = &answer["protection"];
    match p["state"].as_str() {
        Some(state) => println!("instance {}: protection {state} since {}", s(&answer["instance_id"]), s(&p["since"])),
        None => println!("instance {}: not protected", s(&answer["instance_id"])),
    }
    if let Some(image) = answer["base_image"]["id"].as_str() {
        println!("  base image {image} started (nothing is restorable until it is ready)");
    }
}

/// The window as text: its ends, the RPO, restore points, gaps, timeline switches.
fn window_text(w: &Value) -> String {
    let moment = |m: &Value| match m["time"].as_str() {
        Some(time) => format!("{time} (LSN {})", s(&m["lsn"])),
        None => "-".into(),
    };
    let archiving = if w["archiving"] == true { "archiving" } else { "archiving stopped" };
    let mut out = format!("instance {}: {archiving}\n", s(&w["instance_id"]));
    if w["earliest"].is_null() {
        out.push_str("  nothing is restorable yet: a base image must be ready after archiving started\n");
    } else {
        out.push_str(&format!("  earliest: {}\n  latest:   {}\n", moment(&w["earliest"]), moment(&w["latest"])));
    }
    if let Some(rpo) = w["rpo_seconds"].as_f64() {
        out.push_str(&format!("  RPO:      {rpo:.1} s\n"));
    }
    for point in w["restore_points"].as_array().into_iter().flatten() {
        out.push_str(&format!("  restore point {}: {}\n", s(&point["name"]), moment(point)));
    }
    for gap in w["gaps"].as_array().into_iter().flatten() {
        out.push_str(&format!("  gap: WAL {} to {} is missing\n", s(&gap["from"]), s(&gap["to"])));
    }
    for switch in w["timeline_switches"].as_array().into_iter().flatten() {
        let (from, to) = (&switch["from"], &switch["to"]);
        out.push_str(&format!("  timeline switch: {from} to {to} at {}\n", s(&switch["at"])));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, InstanceCommand};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<PitrCommand, String> {
        let cli =
            Cli::try_parse_from([["toygres", "instances"].as_slice(), args].concat()).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Instances(InstanceCommand::Pitr(command)) => Ok(command),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restore_pitr_takes_one_target_at_most() {
        let latest = parse(&["restore-pitr", "undo", "--from", "orders"]).unwrap();
        assert!(matches!(latest, PitrCommand::RestorePitr { time: None, lsn: None, restore_point: None, .. }));
        let at = parse(&["restore-pitr", "undo", "--from", "orders", "--time", "2026-12-05T10:00:00Z", "--wait"]);
        assert!(matches!(at.unwrap(), PitrCommand::RestorePitr { time: Some(_), wait: true, .. }));
        let both = parse(&["restore-pitr", "undo", "--from", "o", "--time", "t", "--lsn", "0/1"]).unwrap_err();
        assert!(both.contains("cannot be used with"), "{both}");
        assert!(parse(&["restore-pitr", "undo"]).unwrap_err().contains("--from"));
    }

    #[test]
    fn protection_subcommands_parse() {
        assert!(matches!(parse(&["protect", "orders", "--wait"]).unwrap(), PitrCommand::Protect { wait: true, .. }));
        assert!(matches!(parse(&["unprotect", "orders"]).unwrap(), PitrCommand::Unprotect { .. }));
        assert!(matches!(parse(&["recovery-window", "orders"]).unwrap(), PitrCommand::RecoveryWindow { .. }));
        let point = parse(&["restore-point", "orders", "before-migration"]).unwrap();
        assert!(matches!(point, PitrCommand::RestorePoint { ref name, .. } if name == "before-migration"));
    }

    #[test]
    fn the_window_shows_its_ends_and_the_rpo() {
        let window = json!({ "instance_id": "i", "archiving": true, "rpo_seconds": 0.25,
            "earliest": { "time": "2026-12-05T10:00:00Z", "lsn": "0/3000000", "image_id": "b" },
            "latest": { "time": "2026-12-05T11:00:00Z", "lsn": "0/5000000" },
            "restore_points": [{ "name": "before", "time": "2026-12-05T10:30:00Z", "lsn": "0/4000000" }], "gaps": [] });
        let text = window_text(&window);
        assert!(text.contains("earliest: 2026-12-05T10:00:00Z (LSN 0/3000000)"), "{text}");
        assert!(text.contains("latest:   2026-12-05T11:00:00Z (LSN 0/5000000)"), "{text}");
        assert!(text.contains("RPO:      0.2 s") || text.contains("RPO:      0.3 s"), "{text}");
        assert!(text.contains("restore point before"), "{text}");
        let empty = window_text(&json!({ "instance_id": "i", "archiving": true, "earliest": null, "latest": null }));
        assert!(empty.contains("nothing is restorable yet"), "{empty}");
    }
}
