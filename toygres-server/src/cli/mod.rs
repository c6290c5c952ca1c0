//! The command line: `toygres serve` and the client subcommands of the API.

mod client;
mod output;
mod pitr;
mod schedules;
mod wait;

use crate::serve::{ServeArgs, TOKEN_ENV};
use clap::{Parser, Subcommand};
use client::Client;
use serde_json::{json, Value};
use std::process::ExitCode;

pub use pitr::PitrCommand;
pub use schedules::ScheduleCommand;

/// Images of PostgreSQL instances and instances restored from them.
#[derive(Debug, Parser)]
#[command(name = "toygres", version, about)]
pub struct Cli {
    /// Server URL.
    #[arg(long, global = true, env = "TOYGRES_SERVER", default_value = "http://127.0.0.1:7070")]
    pub server: String,
    /// Print the server's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (token from TOYGRES_TOKEN).
    Serve(ServeArgs),
    /// PostgreSQL instances.
    #[command(subcommand)]
    Instances(InstanceCommand),
    /// Images of instances.
    #[command(subcommand)]
    Images(ImageCommand),
    /// Images taken on a cron schedule (UTC), with retention.
    #[command(subcommand)]
    Schedules(ScheduleCommand),
    /// Image keys (operator commands, run beside the server with its data directory).
    #[command(subcommand)]
    Keys(crate::keys::KeysCommand),
}

/// `toygres instances …`
#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Create an empty instance, or restore one with --from-image.
    Create {
        /// Instance name (a-z, 0-9, -).
        name: String,
        /// Restore from this image (the instance then uses the image's password).
        #[arg(long)]
        from_image: Option<String>,
        /// DNS label of the public endpoint.
        #[arg(long)]
        dns_label: Option<String>,
        /// Environment variable holding the password of an empty instance (never an argument).
        #[arg(long, default_value = "TOYGRES_INSTANCE_PASSWORD")]
        password_env: String,
        /// Read the password of an empty instance from the first line of stdin instead.
        #[arg(long)]
        password_stdin: bool,
        /// Labels, as `key=value` pairs joined by commas.
        #[arg(long, value_name = "KEY=VALUE,...")]
        labels: Option<String>,
        /// Wait until it runs (or fails), with a progress bar.
        #[arg(long)]
        wait: bool,
    },
    /// List instances (every page), optionally only those with all of `--labels`.
    List {
        /// Only those with every one of these labels (`key=value,…`).
        #[arg(long, value_name = "KEY=VALUE,...")]
        labels: Option<String>,
    },
    /// Show one instance (id or name).
    Get {
        /// Id or name.
        id: String,
        /// Wait until it is no longer provisioning.
        #[arg(long)]
        wait: bool,
    },
    /// Delete an instance (id or name).
    Delete {
        /// Id or name.
        id: String,
    },
    /// Point-in-time restore: protection, recovery window, restore points, restores.
    #[command(flatten)]
    Pitr(PitrCommand),
}

/// `toygres images …`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Take an image of a running instance.
    Create {
        /// Image name (a-z, 0-9, -).
        name: String,
        /// The instance (id) to image.
        #[arg(long)]
        instance: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// How the image holds the data (when omitted, the server's default: logical).
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<ImageFormat>,
        /// Labels, as `key=value` pairs joined by commas.
        #[arg(long, value_name = "KEY=VALUE,...")]
        labels: Option<String>,
        /// Wait until it is ready (or failed), with a progress bar.
        #[arg(long)]
        wait: bool,
    },
    /// Export a clone image as a physical image in the blob store, so that it outlives the
    /// machine keeping the clone (its instance need not be running).
    Export {
        /// The clone image (id).
        image: String,
        /// Name of the physical image (a-z, 0-9, -).
        #[arg(long)]
        name: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// Labels, as `key=value` pairs joined by commas.
        #[arg(long, value_name = "KEY=VALUE,...")]
        labels: Option<String>,
        /// Wait until it is ready (or failed), with a progress bar.
        #[arg(long)]
        wait: bool,
    },
    /// List images (every page), optionally only those with all of `--labels`.
    List {
        /// Only those with every one of these labels (`key=value,…`).
        #[arg(long, value_name = "KEY=VALUE,...")]
        labels: Option<String>,
    },
    /// Show one image.
    Get {
        /// Id.
        id: String,
        /// Wait until it is no longer creating.
        #[arg(long)]
        wait: bool,
    },
    /// Delete an image.
    Delete {
        /// Id.
        id: String,
    },
}

/// `toygres images create --format`: how an image holds its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageFormat {
    /// pg_dump of every database plus the globals: portable, restores onto newer majors.
    Logical,
    /// pg_basebackup of the data files: restores as fast as the disk, same major only.
    Physical,
    /// A copy-on-write clone kept next to the instances: restores in about a second.
    Clone,
}

impl ImageFormat {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Logical => "logical",
            ImageFormat::Physical => "physical",
            ImageFormat::Clone => "clone",
        }
    }
}

/// Runs the command line; the exit code is failure when a waited-for operation failed.
pub async fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let token = std::env::var(TOKEN_ENV).ok();
    let client = || Client::new(&cli.server, token.as_deref());
    let json = cli.json;
    match cli.command {
        Command::Serve(args) => crate::serve::run(args).await.map(|_| ExitCode::SUCCESS),
        Command::Instances(command) => instances(client()?, command, json).await,
        Command::Images(command) => images(client()?, command, json).await,
        Command::Schedules(command) => schedules::run(client()?, command, json).await,
        Command::Keys(command) => crate::keys::run(command).await,
    }
}

async fn instances(
    client: Client,
    command: InstanceCommand,
    json: bool,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let kind = wait::Kind::Instance;
    match command {
        InstanceCommand::Create { name, from_image, dns_label, password_env, password_stdin, labels, wait } => {
            let mut body = json!({ "name": name, "labels": labels_object(labels.as_deref())? });
            if let Some(image) = from_image {
                body["source_image_id"] = json!(image);
            } else {
                body["password"] = json!(read_password(&password_env, password_stdin)?);
            }
            if let Some(label) = dns_label {
                body["dns_label"] = json!(label);
            }
            let created = client.post("/api/instances", &body).await?;
            finish(&client, kind, created, wait, json).await
        }
        InstanceCommand::List { labels } => {
            let list = client.list_all("/api/instances", labels.as_deref().unwrap_or_default()).await?;
            output::print_list(kind, &list, json);
            Ok(ExitCode::SUCCESS)
        }
        InstanceCommand::Get { id, wait } => {
            let record = client.get(&format!("/api/instances/{id}")).await?;
            finish(&client, kind, record, wait, json).await
        }
        InstanceCommand::Delete { id } => {
            client.delete(&format!("/api/instances/{id}")).await?;
            output::deleted(kind, &id, json);
            Ok(ExitCode::SUCCESS)
        }
        InstanceCommand::Pitr(command) => pitr::run(client, command, json).await,
    }
}

async fn images(client: Client, command: ImageCommand, json: bool) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let kind = wait::Kind::Image;
    match command {
        ImageCommand::Create { name, instance, description, format, labels, wait } => {
            let labels = labels_object(labels.as_deref())?;
            let mut body =
                json!({ "name": name, "instance_id": instance, "description": description, "labels": labels });
            if let Some(format) = format {
                body["format"] = json!(format.as_str());
            }
            let created = client.post("/api/images", &body).await?;
            finish(&client, kind, created, wait, json).await
        }
        ImageCommand::Export { image, name, description, labels, wait } => {
            // The export is of the clone image's own instance.
            let clone = client.get(&format!("/api/images/{image}")).await?;
            let labels = labels_object(labels.as_deref())?;
            let body = json!({ "name": name, "instance_id": clone["source_instance_id"], "from_image": image,
                "description": description, "labels": labels });
            let created = client.post("/api/images", &body).await?;
            finish(&client, kind, created, wait, json).await
        }
        ImageCommand::List { labels } => {
            let list = client.list_all("/api/images", labels.as_deref().unwrap_or_default()).await?;
            output::print_list(kind, &list, json);
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Get { id, wait } => {
            let record = client.get(&format!("/api/images/{id}")).await?;
            finish(&client, kind, record, wait, json).await
        }
        ImageCommand::Delete { id } => {
            client.delete(&format!("/api/images/{id}")).await?;
            output::deleted(kind, &id, json);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `key=value,…` as a JSON object (the server checks the labels).
fn labels_object(text: Option<&str>) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut labels = serde_json::Map::new();
    for pair in text.unwrap_or_default().split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| format!("--labels: {pair:?} is not key=value"))?;
        labels.insert(key.to_string(), json!(value));
    }
    Ok(serde_json::Value::Object(labels))
}

/// Prints `record` (after waiting for it to settle with `wait`); failure exit code when it failed.
async fn finish(
    client: &Client,
    kind: wait::Kind,
    record: Value,
    wait: bool,
    json: bool,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let record = if wait {
        let id = record["id"].as_str().ok_or("the server's answer has no id")?.to_string();
        wait::until_settled(client, kind, &id, json).await?
    } else {
        record
    };
    output::print_one(kind, &record, json);
    Ok(if record["state"] == "failed" { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn read_password(env: &str, stdin: bool) -> Result<String, Box<dyn std::error::Error>> {
    if stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            return Err("the first line of stdin is empty; write the password there".into());
        }
        return Ok(password);
    }
    std::env::var(env).map_err(|_| {
        format!("an empty instance needs a password: set {env} (or pass --password-stdin); restores use --from-image")
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(args: &[&str]) -> ImageCommand {
        let cli =
            Cli::try_parse_from([["toygres", "images", "create", "img", "--instance", "i"].as_slice(), args].concat())
                .unwrap();
        match cli.command {
            Command::Images(command) => command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn images_create_takes_an_optional_format() {
        assert!(matches!(create(&[]), ImageCommand::Create { format: None, .. }));
        assert!(matches!(
            create(&["--format", "physical"]),
            ImageCommand::Create { format: Some(ImageFormat::Physical), .. }
        ));
        assert!(matches!(
            create(&["--format", "logical"]),
            ImageCommand::Create { format: Some(ImageFormat::Logical), .. }
        ));
        let wrong = Cli::try_parse_from(["toygres", "images", "create", "img", "--instance", "i", "--format", "tar"]);
        let message = wrong.unwrap_err().to_string();
        assert!(message.contains("--format") && message.contains("physical"), "{message}");
    }

    #[test]
    fn images_export_takes_the_clone_image_and_a_name() {
        let cli = Cli::try_parse_from(["toygres", "images", "export", "c0ffee", "--name", "kept", "--wait"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Images(ImageCommand::Export { ref image, ref name, wait: true, .. }) if image == "c0ffee" && name == "kept"
        ));
        let nameless = Cli::try_parse_from(["toygres", "images", "export", "c0ffee"]).unwrap_err().to_string();
        assert!(nameless.contains("--name"), "{nameless}");
    }
}
