//! Image keys: which key provider the server encrypts images under, and `toygres keys …`, the
//! operator's commands to list, rotate and remove key-encryption keys.
//!
//! Images are encrypted by default. `TOYGRES_IMAGE_KEYS` chooses the provider:
//! - `local` (the default): the key in `TOYGRES_IMAGE_KEY` (64 hex digits) if set, otherwise the
//!   key directory `<data-dir>/image-keys/` (created with a first key, mode 0700/0600);
//! - `aws-kms` (feature `aws-kms`): AWS KMS, configured by `AWS_*` variables and
//!   `TOYGRES_KMS_KEY_ID` (see `toygres_s3::kms`);
//! - `none`: new images are stored unencrypted, as asked explicitly (records show it).
//!
//! `toygres keys rotate` rewraps every image's data key under a new key-encryption key (local:
//! a new key file it creates, unless an earlier rotation was interrupted, which it finishes;
//! KMS: the key configured now). No image byte is read or written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use toygres_core::envelope::{ImageKeys, KeyChain, KeyProvider, LocalKeys};
use toygres_core::{Error, Result, Toygres};

/// Environment variable choosing the image key provider: `local` (default), `aws-kms`, `none`.
pub const IMAGE_KEYS_ENV: &str = "TOYGRES_IMAGE_KEYS";
/// Environment variable holding a single local image key (64 hex digits).
pub const IMAGE_KEY_ENV: &str = "TOYGRES_IMAGE_KEY";

/// What `TOYGRES_IMAGE_KEYS` sets up.
pub struct ImageKeySetup {
    /// The keys the library encrypts and opens images with.
    pub keys: ImageKeys,
    /// The local keys in use or left from before (`toygres keys list|remove` manage them).
    pub local: Option<LocalKeys>,
    /// Whether new images are wrapped by `local` (then `toygres keys rotate` makes a new one).
    pub local_is_primary: bool,
}

/// The provider `TOYGRES_IMAGE_KEYS` selects for the server under `data_dir`. With AWS KMS, a
/// local key directory left from before still opens the images it wrapped ([`KeyChain`]), so
/// `toygres keys rotate` moves them under KMS.
pub async fn image_keys(data_dir: &Path) -> Result<ImageKeySetup> {
    let existing = || LocalKeys::open(key_dir(data_dir)).ok();
    match std::env::var(IMAGE_KEYS_ENV).as_deref() {
        Err(_) | Ok("local") => {
            let keys = match std::env::var(IMAGE_KEY_ENV) {
                Ok(hex) => LocalKeys::from_hex(&hex)?,
                Err(_) => LocalKeys::open_or_create(key_dir(data_dir))?,
            };
            let provider = ImageKeys::Provider(Arc::new(keys.clone()));
            Ok(ImageKeySetup { keys: provider, local: Some(keys), local_is_primary: true })
        }
        Ok("aws-kms") => {
            let local = existing();
            let mut chain = KeyChain::new(aws_kms().await?);
            if let Some(old) = &local {
                chain = chain.with_fallback(Arc::new(old.clone()));
            }
            Ok(ImageKeySetup { keys: ImageKeys::Provider(Arc::new(chain)), local, local_is_primary: false })
        }
        Ok("none") => {
            let local = existing();
            let opening = local.clone().map(|old| Arc::new(old) as Arc<dyn KeyProvider>);
            Ok(ImageKeySetup { keys: ImageKeys::Plaintext(opening), local, local_is_primary: false })
        }
        Ok(other) => Err(Error::InvalidRequest {
            field: IMAGE_KEYS_ENV,
            reason: format!("{other:?} is not a key provider; use `local` (the default), `aws-kms` or `none`"),
        }),
    }
}

/// `<data-dir>/image-keys`.
pub fn key_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("image-keys")
}

#[cfg(feature = "aws-kms")]
async fn aws_kms() -> Result<Arc<dyn toygres_core::envelope::KeyProvider>> {
    Ok(Arc::new(toygres_s3::kms::AwsKms::from_env()?))
}

#[cfg(not(feature = "aws-kms"))]
async fn aws_kms() -> Result<Arc<dyn toygres_core::envelope::KeyProvider>> {
    Err(Error::InvalidRequest {
        field: IMAGE_KEYS_ENV,
        reason: "this build has no AWS KMS provider; build with `--features aws-kms` or use `local`".into(),
    })
}

/// `toygres keys …`
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// List the key-encryption keys and how many images each one wraps.
    List(KeysArgs),
    /// Rewrap every image's data key under a new key-encryption key (resumes an interrupted
    /// rotation instead of starting another). Prints one line per image.
    Rotate {
        /// At most this many images a second (a KMS's request quota is shared); 0: no limit.
        #[arg(long, default_value_t = 0)]
        max_per_second: u32,
        /// Where the server keeps its data.
        #[command(flatten)]
        args: KeysArgs,
    },
    /// Delete a local key-encryption key that no image needs any more.
    Remove {
        /// The key's id (`toygres keys list`).
        key_id: String,
        /// Where the server keeps its data.
        #[command(flatten)]
        args: KeysArgs,
    },
}

/// Where the server's data and keys are (the same settings as `toygres serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct KeysArgs {
    /// The server's data directory.
    #[arg(long, env = "TOYGRES_DATA_DIR", default_value = "toygres-data")]
    pub data_dir: PathBuf,
    /// Directory of PostgreSQL's server binaries (default: discovered).
    #[arg(long, env = "TOYGRES_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
}

/// Runs `toygres keys …` against the catalog and keys of the server's data directory.
pub async fn run(command: KeysCommand) -> std::result::Result<ExitCode, Box<dyn std::error::Error>> {
    let args = match &command {
        KeysCommand::List(args) | KeysCommand::Rotate { args, .. } | KeysCommand::Remove { args, .. } => args.clone(),
    };
    let backends = crate::backends::open(&args.data_dir, args.pg_bin_dir.as_deref()).await?;
    let (toygres, setup) = (backends.toygres, backends.keys);
    let local = setup.local.as_ref();
    let primary = local.filter(|_| setup.local_is_primary);
    match command {
        KeysCommand::List(_) => list(&toygres, local).await,
        KeysCommand::Rotate { max_per_second, .. } => {
            let pace = match max_per_second {
                0 => Duration::ZERO,
                n => Duration::from_secs(1) / n,
            };
            rotate(&toygres, primary, pace).await
        }
        KeysCommand::Remove { key_id, .. } => remove(&toygres, local, &key_id).await,
    }
}

async fn list(
    toygres: &Toygres,
    local: Option<&LocalKeys>,
) -> std::result::Result<ExitCode, Box<dyn std::error::Error>> {
    let usage = toygres.key_usage().await?;
    let current = toygres.keys.provider()?.current_key_id().await?;
    let mut ids: Vec<String> = local.map(LocalKeys::key_ids).transpose()?.unwrap_or_default();
    ids.extend(usage.keys().cloned());
    ids.sort();
    ids.dedup();
    for id in ids {
        let marker = if id == current { "  (current)" } else { "" };
        println!("{id}  {} images{marker}", usage.get(&id).copied().unwrap_or(0));
    }
    Ok(ExitCode::SUCCESS)
}

/// `local`: the primary's key directory, when new images are wrapped by local keys.
async fn rotate(
    toygres: &Toygres,
    local: Option<&LocalKeys>,
    pace: Duration,
) -> std::result::Result<ExitCode, Box<dyn std::error::Error>> {
    let current = toygres.keys.provider()?.current_key_id().await?;
    let usage = toygres.key_usage().await?;
    let pending = usage.iter().filter(|(id, _)| **id != current).map(|(_, n)| n).sum::<usize>();
    match local {
        Some(keys) if pending == 0 && keys.dir().is_some() => println!("new key {}", keys.new_key()?),
        _ if pending > 0 => println!("resuming: {pending} images are not under key {current} yet"),
        _ => {}
    }
    let report = toygres
        .rotate_keys(pace, |step| println!("rotated {}/{} (image {})", step.done, step.total, step.image))
        .await?;
    println!(
        "every image is under key {}: {} rewrapped, {} already were, {} unencrypted, {} failed",
        report.key_id,
        report.rewrapped,
        report.already_current,
        report.plaintext,
        report.failed.len()
    );
    for (image, why) in &report.failed {
        eprintln!("image {image}: {why}");
    }
    Ok(if report.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn remove(
    toygres: &Toygres,
    local: Option<&LocalKeys>,
    key_id: &str,
) -> std::result::Result<ExitCode, Box<dyn std::error::Error>> {
    let Some(keys) = local else {
        return Err("there is no local key directory; retire a KMS key in the KMS".into());
    };
    if let Some(n) = toygres.key_usage().await?.get(key_id) {
        return Err(format!("key {key_id} still wraps {n} images; run `toygres keys rotate` first").into());
    }
    keys.remove_key(key_id)?;
    println!("removed key {key_id}");
    Ok(ExitCode::SUCCESS)
}
