//! central-sim: a stand-in for the central ticketing system that serves the
//! whole Central API v1 (`docs/central-api.yaml`) over HTTPS with its own
//! test CA, against its own SQLite file. A second, plain-HTTP listener on
//! loopback is the test bench's control panel (`/sim/…`): pairing codes,
//! sales, refunds, bulk tickets, payments, failure injection, statistics.

pub mod admin;
mod contract;
mod db;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use admin::SimStats;
pub use contract::SCENIC_AREA;

/// What the control panel can make the API do wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    #[default]
    None,
    /// Every API call answers 500.
    Error,
    /// Every API call waits `slow_ms` first.
    Slow,
    /// Every connection is closed without an answer.
    Drop,
}

/// Shared by every handler.
#[derive(Debug)]
pub struct Sim {
    db: Mutex<Connection>,
    signing_key: SigningKey,
    id_hash_key: Vec<u8>,
    /// The newest change sequence: long polls wait on it.
    seq: watch::Sender<u64>,
    fail: AtomicU8,
    slow_ms: AtomicU64,
    /// Added to the server's clock in every answer.
    clock_offset_ms: AtomicI64,
    /// Update bundles served at `bundles/NAME` (the `bundles` directory
    /// beside the database; `POST /sim/rollout` names one to devices).
    bundles: PathBuf,
    /// Its own API URL, as setup codes name it.
    api_url: String,
    /// The scenic area's name, as setup codes carry it.
    site: String,
    /// Counters for tests and benchmarks.
    pub stats: Stats,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub changes_requests: AtomicU64,
    /// Long polls answered because a change arrived while they waited.
    pub longpoll_wakes: AtomicU64,
    /// Long polls being held right now.
    pub longpoll_waiting: AtomicU64,
    pub events_received: AtomicU64,
    pub duplicates_received: AtomicU64,
}

impl Sim {
    pub fn fail_mode(&self) -> FailMode {
        match self.fail.load(Ordering::Relaxed) {
            1 => FailMode::Error,
            2 => FailMode::Slow,
            3 => FailMode::Drop,
            _ => FailMode::None,
        }
    }

    fn set_fail(&self, mode: FailMode, slow_ms: u64, clock_offset_ms: i64) {
        let v = match mode {
            FailMode::None => 0,
            FailMode::Error => 1,
            FailMode::Slow => 2,
            FailMode::Drop => 3,
        };
        self.fail.store(v, Ordering::Relaxed);
        self.slow_ms.store(slow_ms, Ordering::Relaxed);
        self.clock_offset_ms
            .store(clock_offset_ms, Ordering::Relaxed);
    }

    /// The server's clock, wrong on purpose if told so.
    pub fn now_ms(&self) -> i64 {
        real_now_ms() + self.clock_offset_ms.load(Ordering::Relaxed)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().expect("central-sim db")
    }
}

/// The scenic area central-sim stands for (setup codes name it).
pub const SITE_NAME: &str = "泰山景区 Mount Tai";

pub fn real_now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub db: PathBuf,
    pub tls_dir: PathBuf,
    pub api: SocketAddr,
    pub admin: SocketAddr,
    /// `CODE,DEVICE,ROLE[,GROUP…]` pairing codes made at start (the demo's).
    pub pairing_codes: Vec<String>,
    /// The API URL setup codes name (default: the address it listens on),
    /// for a central system behind a name or a proxy.
    pub public_url: Option<String>,
}

/// What a started central-sim listens on (printed as one JSON line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listening {
    /// Base URL of the API (`https://127.0.0.1:PORT/api/v1`).
    pub api: String,
    pub admin: String,
    /// The test CA's certificate, to pin in gated.toml.
    pub ca_file: PathBuf,
}

/// Opens the database (creating the seed catalog and keys) and starts both listeners.
pub async fn start(opts: &Options) -> Result<(Listening, tokio::task::JoinSet<()>), String> {
    let conn = db::open(&opts.db).map_err(|e| format!("{}: {e}", opts.db.display()))?;
    let (signing_key, id_hash_key) =
        db::keys(&conn).map_err(|e| format!("{}: {e}", opts.db.display()))?;
    let seq = db::max_seq(&conn).map_err(|e| e.to_string())?;
    for spec in &opts.pairing_codes {
        admin::seed_pairing_code(&conn, spec)?;
    }
    let tls = tls::server_config(&opts.tls_dir)?;
    let api = TcpListener::bind(opts.api)
        .await
        .map_err(|e| format!("API listener {}: {e}", opts.api))?;
    let admin_l = TcpListener::bind(opts.admin)
        .await
        .map_err(|e| format!("admin listener {}: {e}", opts.admin))?;
    let listening = Listening {
        api: format!(
            "https://{}/api/v1",
            api.local_addr().map_err(|e| e.to_string())?
        ),
        admin: format!(
            "http://{}",
            admin_l.local_addr().map_err(|e| e.to_string())?
        ),
        ca_file: opts.tls_dir.join(tls::CA_FILE),
    };
    let sim = Arc::new(Sim {
        db: Mutex::new(conn),
        signing_key,
        id_hash_key,
        seq: watch::channel(seq).0,
        fail: AtomicU8::new(0),
        slow_ms: AtomicU64::new(0),
        clock_offset_ms: AtomicI64::new(0),
        bundles: opts
            .db
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("bundles"),
        api_url: opts
            .public_url
            .clone()
            .unwrap_or_else(|| listening.api.clone()),
        site: SITE_NAME.to_owned(),
        stats: Stats::default(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(contract::serve(api, tls, sim.clone()));
    let admin_router = admin::router(sim);
    tasks.spawn(async move {
        if let Err(e) = axum::serve(admin_l, admin_router).await {
            tracing::error!("admin listener: {e}");
        }
    });
    Ok((listening, tasks))
}
