//! Finds Azurite and azcopy for the Azure tests (started by `.ci/azure.sh`).
//!
//! Variables: `TOYGRES_AZURITE_URL` (e.g. `http://127.0.0.1:10000`) and `TOYGRES_AZCOPY` (the azcopy
//! binary); when unset, the file `.ci/azure.sh` writes (`~/.cache/toygres-azure/env`) is read. Under
//! `CI=true` a missing tool fails the test; elsewhere the test prints why it is skipped.
#![allow(dead_code)]

use std::net::TcpStream;
use std::time::Duration;
use toygres_azure::AzureBlobStore;
use toygres_core::ImageId;

/// Where the emulator and azcopy are.
pub struct AzureTools {
    /// Azurite's blob endpoint.
    pub azurite_url: String,
    /// The azcopy binary.
    pub azcopy: String,
}

fn from_env_file() -> (Option<String>, Option<String>) {
    let dir = std::env::var("TOYGRES_AZURE_TOOLS")
        .unwrap_or_else(|_| format!("{}/.cache/toygres-azure", std::env::var("HOME").unwrap_or_default()));
    let text = std::fs::read_to_string(format!("{dir}/env")).unwrap_or_default();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix("export ")?.strip_prefix(name)?.strip_prefix('=').map(String::from))
    };
    (get("TOYGRES_AZURITE_URL"), get("TOYGRES_AZCOPY"))
}

/// The tools, or `None` (after printing why) outside CI. Panics under `CI=true` when one is missing.
pub fn tools() -> Option<AzureTools> {
    let (file_url, file_azcopy) = from_env_file();
    let azurite_url = std::env::var("TOYGRES_AZURITE_URL").ok().or(file_url);
    let azcopy = std::env::var("TOYGRES_AZCOPY").ok().or(file_azcopy);
    let problem = match (&azurite_url, &azcopy) {
        (None, _) | (_, None) => Some("TOYGRES_AZURITE_URL / TOYGRES_AZCOPY are not set".to_string()),
        (Some(url), Some(azcopy)) if !std::path::Path::new(azcopy).is_file() => {
            Some(format!("azcopy {azcopy} does not exist (Azurite at {url})"))
        }
        (Some(url), _) if !answers(url) => Some(format!("nothing answers at {url}")),
        _ => None,
    };
    match problem {
        None => Some(AzureTools { azurite_url: azurite_url?, azcopy: azcopy? }),
        Some(p) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("Azure test tools missing under CI: {p}; run `eval \"$(bash .ci/azure.sh)\"` first")
        }
        Some(p) => {
            eprintln!("SKIPPED: {p}; run `eval \"$(bash .ci/azure.sh)\"` to test against Azurite and azcopy");
            None
        }
    }
}

fn answers(url: &str) -> bool {
    let host_port = url.trim_start_matches("http://").trim_end_matches('/').split('/').next().unwrap_or_default();
    let Ok(mut addrs) = std::net::ToSocketAddrs::to_socket_addrs(host_port) else { return false };
    addrs.next().is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
}

/// A container name no other test uses.
pub fn unique_container(purpose: &str) -> String {
    format!("t-{purpose}-{}", &ImageId::new().to_string()[..8])
}

/// An emulator store on `container` whose jobs run `tools.azcopy` (container not created yet).
pub fn emulator_store(tools: &AzureTools, container: &str) -> AzureBlobStore {
    let azcopy = toygres_azure::AzcopySettings { program: tools.azcopy.clone(), ..Default::default() };
    AzureBlobStore::builder().emulator(&tools.azurite_url).container(container).azcopy(azcopy).build().unwrap()
}
