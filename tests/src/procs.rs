//! The appliance's programs as processes, for end-to-end tests: central-sim,
//! gated and gatectl, started as the image and the demo start them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::central_sim::Listening;

/// A workspace binary next to the running test's (`target/<profile>/NAME`).
/// `cargo nextest run --workspace` and `cargo test --workspace` build them all.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace --features hal/sim)",
        path.display()
    );
    path
}

/// Waits for `f` to hold, checking every 20 ms; panics with `what` after `bound`.
pub async fn wait_until(what: &str, bound: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + bound;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {bound:?} for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running central-sim.
#[derive(Debug)]
pub struct CentralSim {
    pub child: Child,
    pub at: Listening,
    http: reqwest::Client,
}

impl CentralSim {
    /// Starts central-sim with its database and CA under `dir` (kept across
    /// restarts), on `api` (`127.0.0.1:0` for any port).
    pub async fn start(dir: &Path, api: &str) -> Self {
        std::fs::create_dir_all(dir).expect("central-sim's folder");
        let mut child = Command::new(bin("central-sim"))
            .arg("--db")
            .arg(dir.join("central.db"))
            .arg("--tls-dir")
            .arg(dir.join("tls"))
            .args(["--listen", api])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("central-sim starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines
            .next_line()
            .await
            .expect("central-sim stdout")
            .expect("central-sim printed where it listens");
        let at: Listening = serde_json::from_str(&first).expect("central-sim's first line");
        // reqwest is built without a default crypto provider (see Cargo.toml).
        let _ = rustls::crypto::ring::default_provider().install_default();
        CentralSim {
            child,
            at,
            http: reqwest::Client::new(),
        }
    }

    /// The API's socket address (to restart on the same one).
    pub fn api_addr(&self) -> String {
        self.at
            .api
            .trim_start_matches("https://")
            .trim_end_matches("/api/v1")
            .to_owned()
    }

    /// A control-panel call; panics unless it succeeds.
    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.at.admin))
            .json(&body)
            .send()
            .await
            .expect("control panel reachable");
        let status = resp.status();
        let v: Value = resp.json().await.expect("JSON answer");
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// A control-panel page as JSON.
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(format!("{}{path}", self.at.admin))
            .send()
            .await
            .expect("control panel reachable")
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    pub async fn stats(&self) -> crate::central_sim::SimStats {
        self.get("/sim/stats").await
    }

    /// Every device it knows, with its state and last health (`/sim/devices`).
    pub async fn devices(&self) -> Vec<Value> {
        self.get("/sim/devices").await
    }

    /// Every order, oldest first, with its status (`/sim/orders`).
    pub async fn orders(&self) -> Vec<Value> {
        self.get("/sim/orders").await
    }

    pub async fn events(&self) -> Vec<Value> {
        self.get("/sim/events").await
    }

    /// The nonces of the events of `kind` it received, sorted.
    pub async fn event_nonces(&self, kind: &str) -> Vec<String> {
        let mut nonces: Vec<String> = self
            .events()
            .await
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| {
                e["nonce"]
                    .as_str()
                    .expect("an event has its nonce")
                    .to_owned()
            })
            .collect();
        nonces.sort();
        nonces
    }

    /// A pairing code for `device_id` as `role`, valid `ttl_s` seconds.
    pub async fn pairing_code(&self, device_id: &str, role: &str, ttl_s: i64) -> String {
        let v = self.issue_pairing(device_id, role, ttl_s, None).await;
        v["code"].as_str().expect("code").to_owned()
    }

    /// A setup code (the QR code's text) for `device_id`, naming `central`
    /// (default: this central-sim) and the lane group `east`.
    pub async fn setup_code(
        &self,
        device_id: &str,
        role: &str,
        ttl_s: i64,
        central: Option<&str>,
    ) -> String {
        let v = self.issue_pairing(device_id, role, ttl_s, central).await;
        v["setup_code"].as_str().expect("setup_code").to_owned()
    }

    /// A pairing code in lane group `east`, with its setup code.
    async fn issue_pairing(
        &self,
        device_id: &str,
        role: &str,
        ttl_s: i64,
        central: Option<&str>,
    ) -> Value {
        self.admin(
            "/sim/pairing-codes",
            serde_json::json!({ "device_id": device_id, "role": role, "lane_groups": ["east"], "ttl_s": ttl_s, "central": central }),
        )
        .await
    }

    /// An engineer's service code for `device_id` (`*`: every device).
    pub async fn service_code(&self, device_id: &str, ttl_s: i64) -> String {
        let v = self
            .admin(
                "/sim/service-codes",
                serde_json::json!({ "device_id": device_id, "ttl_s": ttl_s }),
            )
            .await;
        v["service_code"].as_str().expect("service_code").to_owned()
    }

    /// Stops it at once, like a crash or a pulled cable.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill central-sim");
    }
}

/// How long a test waits for a log line: generous, it bounds a hang.
pub const LOG_BOUND: Duration = Duration::from_secs(60);

/// A running gated, with its log line by line.
#[derive(Debug)]
pub struct Gated {
    pub child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
}

impl Gated {
    /// Starts gated with no bus (a test must never reach the machine's system bus).
    pub fn start(config: &Path) -> Self {
        Self::start_on_bus(config, "unix:path=/nonexistent/gated-test-bus")
    }

    /// Starts gated with `address` as its system bus.
    pub fn start_on_bus(config: &Path, address: &str) -> Self {
        Self::start_with_env(config, address, &[])
    }

    /// Starts gated with `address` as its system bus and more environment
    /// (e.g. `ALSA_CONFIG_PATH`).
    pub fn start_with_env(config: &Path, address: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(bin("gated"))
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied())
            .env("DBUS_SYSTEM_BUS_ADDRESS", address)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("gated starts");
        let lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        Gated { child, lines }
    }

    /// Waits for a log line containing every one of `parts`; panics if gated
    /// exits first or nothing matches within [`LOG_BOUND`].
    pub async fn wait_for(&mut self, parts: &[&str]) -> String {
        tokio::time::timeout(LOG_BOUND, self.wait_for_unbounded(parts))
            .await
            .unwrap_or_else(|_| panic!("gated did not log {parts:?} within {LOG_BOUND:?}"))
    }

    async fn wait_for_unbounded(&mut self, parts: &[&str]) -> String {
        while let Some(line) = self.lines.next_line().await.expect("gated log") {
            if std::env::var_os("SHOW_GATED_LOG").is_some() {
                eprintln!("gated: {line}");
            }
            if parts.iter().all(|p| line.contains(p)) {
                return line;
            }
        }
        panic!("gated exited before logging {parts:?}");
    }

    /// Waits for one line matching each of `patterns`, in any order, and
    /// returns them in the order of `patterns`.
    pub async fn wait_for_all(&mut self, patterns: &[&[&str]]) -> Vec<String> {
        let mut found: Vec<Option<String>> = vec![None; patterns.len()];
        let deadline = tokio::time::Instant::now() + LOG_BOUND;
        while found.iter().any(Option::is_none) {
            let left: Vec<&[&str]> = patterns
                .iter()
                .zip(&found)
                .filter(|(_, f)| f.is_none())
                .map(|(p, _)| *p)
                .collect();
            let next = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("gated did not log {left:?} within {LOG_BOUND:?}"));
            let Some(line) = next.expect("gated log") else {
                panic!("gated exited before logging {left:?}");
            };
            if std::env::var_os("SHOW_GATED_LOG").is_some() {
                eprintln!("gated: {line}");
            }
            for (parts, f) in patterns.iter().zip(found.iter_mut()) {
                if f.is_none() && parts.iter().all(|p| line.contains(p)) {
                    *f = Some(line.clone());
                }
            }
        }
        found.into_iter().flatten().collect()
    }

    /// The next log line, when it comes (None: gated exited).
    pub async fn next_line(&mut self) -> Option<String> {
        self.lines.next_line().await.ok().flatten()
    }

    /// The log lines gated writes during `d`.
    pub async fn read_for(&mut self, d: Duration) -> Vec<String> {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(d, async {
            while let Ok(Some(l)) = self.lines.next_line().await {
                out.push(l);
            }
        })
        .await;
        out
    }

    /// SIGKILL, then the lines it wrote before it died.
    pub async fn kill_and_drain(mut self) -> Vec<String> {
        self.child.kill().await.expect("kill gated");
        let mut out = Vec::new();
        while let Ok(Some(l)) = self.lines.next_line().await {
            out.push(l);
        }
        out
    }

    /// SIGKILL: no chance to clean up (a power cut, as far as gated can tell).
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill gated");
    }

    /// SIGTERM, as systemd stops it; returns once it exited.
    pub async fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().expect("running") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = self.child.wait().await.expect("gated exits");
        assert!(status.success(), "gated exited with {status}");
    }
}

/// Runs gatectl to completion: (exit code, stdout, stderr).
pub async fn gatectl(args: &[&str]) -> (i32, String, String) {
    gatectl_on_bus("unix:path=/nonexistent/gated-test-bus", args).await
}

/// Runs gatectl with `address` as its system bus.
pub async fn gatectl_on_bus(address: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("gatectl"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", address)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("gatectl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A read-only look at gated's database (while it runs).
pub fn db(state_dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        state_dir.join("gated.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("gated.db")
}

/// One number from gated's database (0 if it is not there yet).
pub fn db_count(state_dir: &Path, sql: &str) -> i64 {
    if !state_dir.join("gated.db").exists() {
        return 0;
    }
    db(state_dir)
        .query_row(sql, [], |r| r.get::<_, i64>(0))
        .unwrap_or(0)
}

/// gated's sync cursor.
pub fn cursor(state_dir: &Path) -> u64 {
    db_count(
        state_dir,
        "SELECT CAST(CAST(value AS TEXT) AS INTEGER) FROM device_settings WHERE name = 'sync.cursor'",
    ) as u64
}

/// A private bus (`dbus-daemon`), optionally with the shipped policy for
/// gated's name: its users mapped to ones that exist here.
#[derive(Debug)]
pub struct Bus {
    pub child: Child,
    pub address: String,
}

impl Bus {
    /// `policy`: (shipped policy file, [(user in the file, user here)]).
    pub async fn start(dir: &Path, policy: Option<(&Path, &[(&str, &str)])>) -> Self {
        // Other users (the kiosk's) must reach the socket.
        std::fs::create_dir_all(dir).expect("bus dir");
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod bus dir");
        let socket = dir.join("bus");
        let mut include = String::new();
        if let Some((file, users)) = policy {
            let mut text = std::fs::read_to_string(file).expect("policy file");
            for (from, to) in users {
                text = text.replace(&format!("user=\"{from}\""), &format!("user=\"{to}\""));
            }
            let mapped = dir.join("policy.conf");
            std::fs::write(&mapped, text).expect("mapped policy");
            include = format!("<include>{}</include>", mapped.display());
        }
        let config = dir.join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
  {include}
</busconfig>
"#,
                socket.display()
            ),
        )
        .expect("bus config");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("dbus-daemon (package dbus) starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let address = lines
            .next_line()
            .await
            .expect("dbus-daemon stdout")
            .expect("dbus-daemon printed its address");
        Bus { child, address }
    }
}
