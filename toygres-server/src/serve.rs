//! `toygres serve`: the control plane process.

use crate::api::{self, auth::Auth, AppState};
use crate::engine::Engine;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Environment variable holding the bearer token every request must carry.
pub const TOKEN_ENV: &str = "TOYGRES_TOKEN";

/// Options of `toygres serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Where the catalog, the images, the instances and the durable store live.
    #[arg(long, env = "TOYGRES_DATA_DIR", default_value = "toygres-data")]
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, env = "TOYGRES_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Serve without authentication (TOYGRES_TOKEN is otherwise required).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Directory of PostgreSQL's server binaries (default: discovered).
    #[arg(long, env = "TOYGRES_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    /// How many images and instances may be in the making at once (running or queued for the
    /// durable runtime's workers); a creation beyond it is answered 429 with Retry-After.
    #[arg(long, env = "TOYGRES_MAX_RUNNING_OPERATIONS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_running_operations: u32,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "TOYGRES_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "TOYGRES_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How much of an image a restore's admission reads before anything is created: `auto`
    /// (`full`, unless the executor's restore job hashes every byte as it loads it, as the
    /// Kubernetes executor's does: then `manifest-and-sizes`, and a restore reads the image once),
    /// `full` (every byte: a corrupted image is refused at once, but an image of tens of GB may
    /// outlast the 60 s request limit) or `manifest-and-sizes` (the manifest's checksum and each
    /// object's size; the restore job still hashes every byte, and a corrupted image then fails
    /// the instance it created).
    #[arg(long, env = "TOYGRES_VERIFY", value_enum, default_value_t = Verify::Auto)]
    pub verify: Verify,
    /// Sharing the work with other replicas.
    #[command(flatten)]
    pub replica: crate::replica::ReplicaArgs,
}

/// `--verify`: [`toygres_core::VerifyMode`] as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Verify {
    /// Every byte, unless the executor's restore job hashes every byte as it loads it.
    Auto,
    /// Every byte of the image.
    Full,
    /// The manifest's checksum and every object's size.
    ManifestAndSizes,
}

impl From<Verify> for toygres_core::VerifyMode {
    fn from(verify: Verify) -> Self {
        match verify {
            Verify::Auto => toygres_core::VerifyMode::Auto,
            Verify::Full => toygres_core::VerifyMode::Full,
            Verify::ManifestAndSizes => toygres_core::VerifyMode::ManifestAndSizes,
        }
    }
}

/// Runs the server until SIGINT or SIGTERM. Everything it creates is private to its OS user
/// (umask 077): the catalog, its key, the durable store, images and job logs. What the instances'
/// servers must reach is opened on purpose (the directories they traverse, 0711).
pub async fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: umask(2) cannot fail; it sets this process's mask before any file is created.
    unsafe { libc::umask(0o077) };
    let auth = match (std::env::var(TOKEN_ENV), args.insecure_no_auth) {
        (Ok(token), false) if !token.trim().is_empty() => Auth::token(token.trim()),
        (_, true) => {
            tracing::warn!(
                "authentication is disabled (--insecure-no-auth): anyone reaching the port has full control"
            );
            Auth::disabled()
        }
        _ => {
            return Err(
                format!("set {TOKEN_ENV} to the bearer token clients must send (or pass --insecure-no-auth)").into()
            )
        }
    };
    // Read before anything starts: a wrong file fails the start, not the first client.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
        _ => None,
    };
    let backends = crate::backends::open(&args.data_dir, args.pg_bin_dir.as_deref()).await?;
    let mut options = backends.toygres.options.clone();
    options.verify = args.verify.into();
    let engine = Engine::start(backends.toygres.with_options(options), &backends.durable_store, &args.replica).await?;
    let app = api::router(AppState::new(engine.clone(), args.max_running_operations as usize), auth);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "listening beyond loopback without TLS: the bearer token and the instances' passwords cross the \
             network in clear text; pass --tls-cert and --tls-key, or listen on 127.0.0.1 behind a proxy"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("toygres listening on {scheme}://{addr}");
    tracing::info!(%addr, data_dir = %args.data_dir.display(), replica = %args.replica.id(), "serving");
    match tls {
        Some(acceptor) => {
            let listener = crate::tls::TlsListener::new(listener, acceptor);
            axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?
        }
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?,
    }
    engine.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
