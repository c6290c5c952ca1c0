//! `toygres schedules create|list|show|delete`: images of an instance on a cron schedule.

use super::client::Client;
use super::ImageFormat;
use clap::Subcommand;
use serde_json::{json, Value};
use std::process::ExitCode;

/// `toygres schedules …`
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Take images of an instance on a cron schedule (5 fields, UTC), keeping the newest ones.
    Create {
        /// Schedule name (a-z, 0-9, -; at most 49): its images are named NAME-YYYYMMDDtHHMM.
        name: String,
        /// The instance (id) to image.
        #[arg(long)]
        instance: String,
        /// When, in UTC: `minute hour day-of-month month day-of-week`, e.g. "0 3 * * *".
        #[arg(long)]
        cron: String,
        /// How the images hold the data (when omitted, the server's default: logical).
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<ImageFormat>,
        /// Keep the newest N ready images (when omitted, the server's default: 7).
        #[arg(long, value_name = "N")]
        keep_last: Option<u32>,
        /// Also keep images younger than this many seconds.
        #[arg(long, value_name = "SECONDS")]
        keep_younger_than: Option<u64>,
    },
    /// List schedules with their next run.
    List,
    /// Show one schedule.
    Show {
        /// Id.
        id: String,
    },
    /// Delete a schedule (the images it made are kept).
    Delete {
        /// Id.
        id: String,
    },
}

/// Runs a schedules subcommand.
pub async fn run(client: Client, command: ScheduleCommand, json: bool) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match command {
        ScheduleCommand::Create { name, instance, cron, format, keep_last, keep_younger_than } => {
            let mut body = json!({ "name": name, "instance_id": instance, "cron": cron });
            if let Some(format) = format {
                body["format"] = json!(format.as_str());
            }
            if let Some(n) = keep_last {
                body["keep_last"] = json!(n);
            }
            if let Some(seconds) = keep_younger_than {
                body["keep_younger_than_seconds"] = json!(seconds);
            }
            print_one(&client.post("/api/schedules", &body).await?, json);
        }
        ScheduleCommand::List => {
            let page = client.get("/api/schedules").await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&items).unwrap_or_default());
            } else if items.is_empty() {
                println!("no schedules");
            } else {
                items.iter().for_each(|s| println!("{}", line(s)));
            }
        }
        ScheduleCommand::Show { id } => print_one(&client.get(&format!("/api/schedules/{id}")).await?, json),
        ScheduleCommand::Delete { id } => {
            client.delete(&format!("/api/schedules/{id}")).await?;
            if json {
                println!("{}", json!({ "id": id, "deleted": true }));
            } else {
                println!("deleted schedule {id} (its images are kept)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_one(schedule: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(schedule).unwrap_or_default());
    } else {
        println!("{}", line(schedule));
    }
}

/// `id  name  cron  format  keep  next run`.
fn line(s: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let keep = match s["keep_younger_than_seconds"].as_u64() {
        Some(age) => format!("keep {} and {age}s", s["keep_last"]),
        None => format!("keep {}", s["keep_last"]),
    };
    format!(
        "{}  {:<24} {:<16} {:<9} {:<18} next {}",
        text(&s["id"]),
        text(&s["name"]),
        text(&s["cron"]),
        text(&s["format"]),
        keep,
        text(&s["next_run_at"])
    )
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser;

    #[test]
    fn schedules_create_takes_cron_and_retention() {
        let cli = Cli::try_parse_from([
            "toygres",
            "schedules",
            "create",
            "nightly",
            "--instance",
            "i",
            "--cron",
            "0 3 * * *",
            "--keep-last",
            "3",
        ])
        .unwrap();
        match cli.command {
            Command::Schedules(ScheduleCommand::Create { cron, keep_last, format, keep_younger_than, .. }) => {
                assert_eq!((cron.as_str(), keep_last, format, keep_younger_than), ("0 3 * * *", Some(3), None, None));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["toygres", "schedules", "create", "n", "--instance", "i"]).is_err(), "--cron");
        assert!(matches!(
            Cli::try_parse_from(["toygres", "schedules", "show", "x"]).unwrap().command,
            Command::Schedules(ScheduleCommand::Show { .. })
        ));
    }
}
