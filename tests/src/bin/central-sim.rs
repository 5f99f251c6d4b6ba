//! central-sim: the central ticketing system for tests and the demo.
//! Prints one JSON line (API URL, control-panel URL, CA file) when ready.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tests::central_sim::{self, Options};

/// A stand-in for the central ticketing system: serves Central API v1 over
/// HTTPS with its own test CA, and a control panel (`/sim/…`) over plain HTTP.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Its SQLite database (created and seeded with a catalog if missing).
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// Where the test CA and the server certificate live (made if missing).
    #[arg(long, value_name = "DIR")]
    tls_dir: PathBuf,
    /// Address of the API (HTTPS).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Address of the control panel (plain HTTP; keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    admin: SocketAddr,
    /// A pairing code to accept, `CODE,DEVICE,ROLE[,GROUP…]` (repeatable).
    #[arg(long = "pairing-code", value_name = "SPEC")]
    pairing_codes: Vec<String>,
    /// The API URL setup codes name (default: the address it listens on).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let opts = Options {
        db: args.db,
        tls_dir: args.tls_dir,
        api: args.listen,
        admin: args.admin,
        pairing_codes: args.pairing_codes,
        public_url: args.public_url,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        match central_sim::start(&opts).await {
            Ok((listening, mut tasks)) => {
                println!("{}", serde_json::to_string(&listening).expect("json"));
                tracing::info!(
                    api = listening.api,
                    admin = listening.admin,
                    "central-sim ready"
                );
                tasks.join_next().await;
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("central-sim: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
