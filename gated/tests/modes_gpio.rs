//! The operating modes driven by simulated GPIO lines (no GPIO chip exists
//! here; the QEMU image runs the real character-device backend): a UPS
//! HAT's power-fail line and a gate's fire input, through the same
//! `InputLine` and gate code as on a device, with a recording PowerOff.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gated::lanes::LaneState;
use gated::modes::{self, Inputs, Mode, PowerOff, Settings};
use gated::store::Db;
use hal::gate::gpio::GpioSettings;
use hal::gate::sim::{GateKind, SimGpioGate};
use hal::gpio::sim::SimLine;
use tokio::sync::watch;

/// Records the order of logind calls and what held at PowerOff.
struct Recorder {
    calls: Arc<Mutex<Vec<String>>>,
    gate: SimGpioGate,
    db: std::path::PathBuf,
}

impl PowerOff for Recorder {
    async fn inhibit(&mut self, _why: &str) -> Result<zbus::OwnedFd, String> {
        self.calls.lock().unwrap().push("inhibit".into());
        let (_ours, theirs) = nix::unistd::pipe().map_err(|e| e.to_string())?;
        Ok(theirs.into())
    }

    async fn power_off(&mut self) -> Result<(), String> {
        let db = rusqlite::Connection::open(&self.db).unwrap();
        let flushed: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE kind = 'shutdown'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        self.calls.lock().unwrap().push(format!(
            "power_off open={} flushed={flushed}",
            self.gate.is_open()
        ));
        Ok(())
    }
}

/// The machine's inputs as the tests start from: no lanes, the link's and
/// the fire inputs' channels as given, a 100 ms debounce, no grace limit, a
/// fresh recorder.
fn inputs(
    db: &std::path::Path,
    power: watch::Receiver<gated::power::PowerView>,
    fire: tokio::sync::mpsc::Receiver<(String, bool)>,
) -> Inputs<Recorder> {
    let store = Db::open(db).unwrap();
    let nonces = store.writer().nonces("gpio-test").unwrap();
    Inputs {
        nonces,
        settings: Settings {
            debounce: Duration::from_millis(100),
            grace: Duration::ZERO,
            low_percent: 20.0,
            fire_reset_by_engineer: false,
            peak: gated::lane::Relax {
                exit_first: true,
                reentry_wait: true,
            },
        },
        power,
        link: watch::channel(Default::default()).1,
        fire,
        lanes: None,
        store,
        upload_now: Arc::new(tokio::sync::Notify::new()),
        logind: Recorder {
            calls: Arc::new(Mutex::new(Vec::new())),
            gate: SimGpioGate::new(GateKind::WingGate, GpioSettings::default()).0,
            db: db.to_owned(),
        },
    }
}

/// A UPS HAT's power-fail line (high when mains is lost), followed as gated
/// does: the sender moves the line, the receiver is gated's power view.
fn power_fail_line(
    tasks: &mut tokio::task::JoinSet<()>,
) -> (
    tokio::sync::mpsc::UnboundedSender<bool>,
    watch::Receiver<gated::power::PowerView>,
) {
    let (mains_lost, line) = SimLine::pair(false);
    let power = gated::power::follow(
        "gpio sim".into(),
        hal::power::spawn_gpio("power-fail line", line, false, Duration::from_millis(5)),
        tasks,
    );
    (mains_lost, power)
}

async fn wait_for(view: &mut watch::Receiver<modes::ModeView>, mode: Mode) {
    let reached = tokio::time::timeout(Duration::from_secs(30), view.wait_for(|v| v.mode == mode))
        .await
        .is_ok();
    assert!(reached, "mode never {mode:?}; it is {:?}", view.borrow());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_fail_and_fire_lines_drive_the_gate_and_the_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gated.db");
    // A wing gate on dry contacts; its lane opens on UPS power.
    let settings = GpioSettings {
        debounce: Duration::from_millis(5),
        ..GpioSettings::default()
    };
    let (sim, lines) = SimGpioGate::new(GateKind::WingGate, settings);
    let gate = hal::gate::gpio::spawn("sim wing gate", lines, settings);
    let lane: gated::config::Lane = toml::from_str(
        "direction = \"entry\"\ngroup = \"east\"\ngate = \"wing\"\nscanners = [\"qr\"]\npower_fail_mode = \"open\"\n",
    )
    .unwrap();
    let registry = Arc::new(vec![Arc::new(LaneState::new("east-1", &lane, gate))]);
    let lanes = gated::lane::Engine::new(Db::open(&db).unwrap(), "modes-gpio").unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    let (mains_lost, power) = power_fail_line(&mut tasks);
    let (fire_tx, fire_rx) = tokio::sync::mpsc::channel(4);
    modes::fire_from_gates(&registry, &fire_tx);
    drop(fire_tx);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut input = inputs(&db, power, fire_rx);
    input.settings.grace = Duration::from_millis(1500);
    input.lanes = Some((lanes, registry.clone()));
    input.logind = Recorder {
        calls: calls.clone(),
        gate: sim.clone(),
        db: db.clone(),
    };
    let (m, _task) = modes::start(input);
    let mut view = m.view.clone();
    assert!(!sim.is_open());

    // The fire line: every gate opens; it closes when the line clears.
    sim.set_fire(true);
    wait_for(&mut view, Mode::FireAlarm).await;
    sim.wait_until(|g| g.is_open()).await;
    assert_eq!(registry[0].forced_by(), Some("fire alarm"));
    sim.set_fire(false);
    wait_for(&mut view, Mode::Normal).await;
    sim.wait_until(|g| !g.is_open()).await;
    assert_eq!(registry[0].forced_by(), None);

    // Mains lost: after the debounce the lane opens, then the grace time
    // runs out and the device powers off, gates open, records flushed.
    mains_lost.send(true).unwrap();
    wait_for(&mut view, Mode::PowerFallback).await;
    sim.wait_until(|g| g.is_open()).await;
    wait_for(&mut view, Mode::Shutdown).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while calls.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no PowerOff");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        *calls.lock().unwrap(),
        ["inhibit", "power_off open=true flushed=1"]
    );
    assert!(
        view.borrow().cause.contains("grace time 1 s"),
        "{:?}",
        view.borrow()
    );
}

/// A device without gates (a kiosk) with a fire-alarm contact of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_line_of_its_own_puts_a_kiosk_out_of_service() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gated.db");
    // Normally closed, pulled up: low while all is well.
    let (contact, line) = SimLine::pair(false);
    let (fire_tx, fire_rx) = tokio::sync::mpsc::channel(4);
    modes::follow_fire_line("fire input sim".into(), line, false, &fire_tx);
    drop(fire_tx);
    let (_never, power) = watch::channel(gated::power::PowerView::default());
    let (m, _task) = modes::start(inputs(&db, power, fire_rx));
    let mut view = m.view.clone();
    contact.send(true).unwrap();
    wait_for(&mut view, Mode::FireAlarm).await;
    assert!(
        view.borrow().cause.contains("fire input sim"),
        "{:?}",
        view.borrow()
    );
    contact.send(false).unwrap();
    wait_for(&mut view, Mode::Normal).await;
    let db = rusqlite::Connection::open(&db).unwrap();
    let changes: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'mode_change'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(changes, 2);
}

/// Offline and the power fallback: mains lost while offline takes over
/// (the upload is nudged while the network lasts); with the central system
/// and mains back the device returns to normal without anyone's help.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_and_power_loss_together() {
    use gated::central::sync::{Mode as Link, SyncStatus};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gated.db");
    let mut tasks = tokio::task::JoinSet::new();
    let (mains_lost, power) = power_fail_line(&mut tasks);
    let (link, link_rx) = watch::channel(SyncStatus {
        mode: Link::Online,
        ..Default::default()
    });
    let (_fire_tx, fire_rx) = tokio::sync::mpsc::channel(1);
    let upload = Arc::new(tokio::sync::Notify::new());
    let mut input = inputs(&db, power, fire_rx);
    input.settings.debounce = Duration::from_millis(50);
    input.link = link_rx;
    input.upload_now = upload.clone();
    let (m, _task) = modes::start(input);
    let mut view = m.view.clone();
    let set_link = |mode| {
        link.send_modify(|s| {
            s.mode = mode;
            s.last_error = (mode == Link::Offline).then(|| "connection refused".to_owned());
        })
    };
    set_link(Link::Offline);
    wait_for(&mut view, Mode::Offline).await;
    assert!(view.borrow().cause.contains("connection refused"));
    mains_lost.send(true).unwrap();
    wait_for(&mut view, Mode::PowerFallback).await;
    // The fallback asked for an upload while the network lasts.
    tokio::time::timeout(Duration::from_secs(5), upload.notified())
        .await
        .expect("upload nudged");
    set_link(Link::Online);
    mains_lost.send(false).unwrap();
    wait_for(&mut view, Mode::Normal).await;
    let db = rusqlite::Connection::open(&db).unwrap();
    let moves: Vec<String> = db
        .prepare("SELECT body FROM outbox WHERE kind = 'mode_change' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|b| {
            let v: serde_json::Value = serde_json::from_str(&b.unwrap()).unwrap();
            format!(
                "{}->{}",
                v["from"].as_str().unwrap(),
                v["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            "normal->offline",
            "offline->power_fallback",
            "power_fallback->normal"
        ]
    );
}
