//! `toygres`: the server (`toygres serve`) and its command line client.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = toygres_server::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOYGRES_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match toygres_server::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
