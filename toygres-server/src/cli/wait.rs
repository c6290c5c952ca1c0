//! `--wait`: follows an operation until it settles, with a live progress bar (bytes and ETA).

use super::client::Client;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::time::Duration;

/// What is waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An instance (settles `running` or `failed`).
    Instance,
    /// An image (settles `ready` or `failed`).
    Image,
}

impl Kind {
    /// `/api/instances` or `/api/images`.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Instance => "/api/instances",
            Kind::Image => "/api/images",
        }
    }

    fn busy(self, state: &str) -> bool {
        matches!((self, state), (Kind::Instance, "provisioning") | (Kind::Image, "creating"))
    }
}

/// Polls the record until it is no longer being created, showing its step and bytes.
pub async fn until_settled(
    client: &Client,
    kind: Kind,
    id: &str,
    quiet: bool,
) -> Result<Value, Box<dyn std::error::Error>> {
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    let spinner = ProgressStyle::with_template("{spinner} {msg} {bytes} ({elapsed})")?;
    let bytes = ProgressStyle::with_template("{spinner} {msg} [{bar:24}] {bytes}/{total_bytes} ETA {eta}")?
        .progress_chars("=> ");
    bar.set_style(spinner.clone());
    bar.enable_steady_tick(Duration::from_millis(120));
    loop {
        let record = client.get(&format!("{}/{id}", kind.path())).await?;
        let state = record["state"].as_str().unwrap_or("").to_string();
        if !kind.busy(&state) {
            bar.finish_and_clear();
            return Ok(record);
        }
        let progress = &record["progress"];
        let step = progress["step"].as_str().unwrap_or("starting");
        bar.set_message(format!("{} {state}: {step}", record["name"].as_str().unwrap_or(id)));
        if let Some(total) = progress["bytes_total"].as_u64() {
            if bar.length() != Some(total) {
                bar.set_style(bytes.clone());
                bar.set_length(total);
            }
        }
        bar.set_position(progress["bytes_done"].as_u64().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
