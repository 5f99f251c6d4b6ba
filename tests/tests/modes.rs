//! The device's operating modes through their real input paths: the UPS
//! over NUT (a NUT server on loopback) and over UPower (a fake UPower on a
//! private dbus-daemon), the fire alarm over a Modbus gate controller's
//! input, logind's Inhibit and PowerOff recorded by a fake logind on the
//! same bus. gated runs as a process, as the image starts it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hal::gate::GateMode;
use hal::gate::map::RegisterMap;
use hal::gate::sim::{GateKind, SimGate, TcpServer};
use hal::power::sim::SimUpsd;
use hal::pty::Pty;
use hal::scanner::sim::SimScanner;
use tests::fake_logind::{Call, FakeLogind};
use tests::offline_tickets;
use tests::procs::{Bus, Gated, LOG_BOUND, gatectl_on_bus, wait_until};

/// A lane device with two lanes on two Modbus gates: east-1 (a turnstile)
/// opens on UPS power, east-2 (a two-way wing gate with a fire input) stays
/// locked.
struct Device {
    dir: tempfile::TempDir,
    /// east-1's scanner, east-2's entry and exit scanners.
    scanners: [SimScanner; 3],
    gates: [SimGate; 2],
    _servers: Vec<TcpServer>,
    ups: SimUpsd,
    bus: Bus,
    /// A client of the private bus: properties and signals.
    conn: zbus::Connection,
}

impl Device {
    async fn start(extra: &str) -> Device {
        Self::start_with(None, extra).await
    }

    /// `power`: the `[power]` table's body instead of NUT's.
    async fn start_with(power: Option<&str>, extra: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let gates = [
            SimGate::new(GateKind::Turnstile, RegisterMap::load("lot").unwrap(), 1),
            // A wing gate whose controller has a fire-alarm input.
            SimGate::new(
                GateKind::WingGate,
                RegisterMap::load("coil-example").unwrap(),
                1,
            ),
        ];
        let mut servers = Vec::new();
        let mut addrs = Vec::new();
        for g in &gates {
            let (a, s) = g.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
            addrs.push(a);
            servers.push(s);
        }
        let (ups, ups_addr) = SimUpsd::start("127.0.0.1:0".parse().unwrap(), "ups")
            .await
            .unwrap();
        ups.set("ups.status", "OL");
        ups.set("battery.charge", "100");
        let bus = Bus::start(&dir.path().join("bus"), None).await;
        let scanners = ["s1", "s2", "s2x"]
            .map(|n| SimScanner::new(Pty::open_at(&dir.path().join(n)).unwrap()));
        let toml = format!(
            "role = \"lane\"\ndevice_id = \"modes-1\"\nstate_dir = \"{state}\"\n\
             [central]\nurl = \"https://central.invalid/api/v1\"\n\
             [devices.gates.g1]\nmodbus = \"tcp://{a1}\"\npoll_ms = 10\n\
             [devices.gates.g2]\nmodbus = \"tcp://{a2}\"\nmap = \"coil-example\"\npoll_ms = 10\n\
             [devices.scanners.s1]\nport = \"{d}/s1\"\n\
             [devices.scanners.s2]\nport = \"{d}/s2\"\n\
             [devices.scanners.s2x]\nport = \"{d}/s2x\"\n\
             [lanes.east-1]\ndirection = \"entry\"\ngroup = \"east\"\ngate = \"g1\"\nscanners = [\"s1\"]\npower_fail_mode = \"open\"\n\
             [lanes.east-2]\ndirection = \"both\"\ngroup = \"east\"\ngate = \"g2\"\nscanners = [\"s2\"]\nexit_scanners = [\"s2x\"]\npower_fail_mode = \"locked\"\n\
             [power]\n{power}\n{extra}",
            power = power.map(str::to_owned).unwrap_or(format!(
                "nut = \"{ups_addr}/ups\"\npoll_ms = 20\ndebounce_ms = 400\ngrace_s = 0\nlow_percent = 20\n"
            )),
            state = dir.path().join("state").display(),
            a1 = addrs[0],
            a2 = addrs[1],
            d = dir.path().display(),
        );
        std::fs::write(dir.path().join("gated.toml"), toml).unwrap();
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .build()
            .await
            .unwrap();
        Device {
            dir,
            scanners,
            gates,
            _servers: servers,
            ups,
            bus,
            conn,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("gated.toml")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    async fn gated(&self) -> Gated {
        self.gated_waiting_for(&[]).await
    }

    /// gated, once it serves its API, its last scanner is connected, and it
    /// has logged each of `more`.
    async fn gated_waiting_for(&self, more: &[&[&str]]) -> Gated {
        let mut g = Gated::start_on_bus(&self.config(), &self.bus.address);
        let mut patterns: Vec<&[&str]> = vec![
            &["D-Bus API served"],
            &["gated ready"],
            &["device=\"s2x\"", "connected"],
        ];
        patterns.extend_from_slice(more);
        g.wait_for_all(&patterns).await;
        g
    }

    async fn prop<T: TryFrom<zbus::OwnedVariant>>(&self, name: &str) -> T
    where
        T::Error: std::fmt::Debug,
    {
        let reply = self
            .conn
            .call_method(
                Some("cn.scenicpark.Gated"),
                "/cn/scenicpark/Gated",
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &("cn.scenicpark.Gated.Device1", name),
            )
            .await
            .unwrap();
        let v: zbus::OwnedVariant = reply.body().deserialize().unwrap();
        T::try_from(v).unwrap()
    }

    async fn mode(&self) -> String {
        self.prop::<String>("OperatingMode").await
    }

    async fn wait_for_mode(&self, mode: &str) {
        self.wait_for_prop("OperatingMode", mode.to_owned()).await
    }

    /// Waits until the property `name` of Device1 reads `value`.
    async fn wait_for_prop<T>(&self, name: &str, value: T)
    where
        T: TryFrom<zbus::OwnedVariant> + PartialEq + std::fmt::Debug,
        T::Error: std::fmt::Debug,
    {
        let deadline = tokio::time::Instant::now() + LOG_BOUND;
        loop {
            let now = self.prop::<T>(name).await;
            if now == value {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} stayed {now:?}, never {value:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until gated has put east-1's and east-2's gates in these modes.
    async fn wait_gates(&self, modes: [GateMode; 2]) {
        for (g, m) in self.gates.iter().zip(modes) {
            g.wait_until(|g| g.mode() == m).await;
        }
    }

    async fn gatectl(&self, args: &[&str]) -> (i32, String, String) {
        gatectl_on_bus(&self.bus.address, args).await
    }

    /// Mode transitions recorded for the central system, in order.
    fn transitions(&self) -> Vec<String> {
        outbox_rows(&self.state(), "mode_change")
            .iter()
            .map(|b| {
                format!(
                    "{}->{}",
                    b["from"].as_str().unwrap(),
                    b["to"].as_str().unwrap()
                )
            })
            .collect()
    }
}

/// One lane from `Lane1.Lanes` (through gatectl status --json).
fn lane_json(d: &Device, name: &str) -> Option<serde_json::Value> {
    let out = std::process::Command::new(tests::procs::bin("gatectl"))
        .args(["--json", "status", "-c", &d.config().display().to_string()])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &d.bus.address)
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["lanes"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == name)
        .cloned()
}

fn outbox_rows(state: &Path, kind: &str) -> Vec<serde_json::Value> {
    let db = tests::procs::db(state);
    let mut st = db
        .prepare("SELECT body FROM outbox WHERE kind = ?1 ORDER BY id")
        .unwrap();
    st.query_map([kind], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|b| serde_json::from_str(&b.unwrap()).unwrap())
        .collect()
}

/// Brownouts are ignored; lost mains puts each lane in its power-fail mode
/// and refuses lane commands; mains back restores everything; the UPS's
/// forced shutdown takes an inhibitor, makes the gates safe, flushes and
/// calls PowerOff, in that order, and gated keeps running until logind acts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mains_lost_over_nut_then_back_then_a_forced_shutdown_in_order() {
    let d = Device::start("").await;
    let (g1, g2) = (d.gates[0].clone(), d.gates[1].clone());
    let state = d.state();
    let logind = FakeLogind::start(&d.bus.address, move || {
        // What holds at the instant PowerOff arrives.
        let shutdown_rows = outbox_rows(&state, "shutdown").len();
        format!(
            "g1={:?} g2={:?} shutdown_rows={shutdown_rows}",
            g1.mode(),
            g2.mode()
        )
    })
    .await;
    let mut gated = d.gated().await;
    assert_eq!(d.mode().await, "normal");

    // A brownout shorter than the debounce: seen, and ignored.
    d.ups.set("ups.status", "OB DISCHRG");
    gated.wait_for(&["power: ON BATTERY"]).await;
    d.ups.set("ups.status", "OL");
    gated.wait_for(&["power: on mains"]).await;
    // Still normal, and it says why rather than "starting".
    d.wait_for_prop("OperatingModeCause", "all clear".to_owned())
        .await;

    // Mains lost for good.
    d.ups.set("ups.status", "OB DISCHRG");
    d.ups.set("battery.charge", "80");
    d.wait_for_mode("power_fallback").await;
    let cause: String = d.prop("OperatingModeCause").await;
    assert!(
        cause.contains("mains lost") && cause.contains("ON BATTERY, 80 %"),
        "{cause}"
    );
    d.wait_gates([GateMode::Free, GateMode::Locked]).await;
    let (rc, _, err) = d.gatectl(&["lane", "east-1", "mode", "normal"]).await;
    assert_ne!(rc, 0);
    assert!(err.contains("power fallback"), "{err}");
    let (rc, out, _) = d
        .gatectl(&["status", "-c", &d.config().display().to_string()])
        .await;
    assert_eq!(rc, 0);
    assert!(out.contains("mode          POWER_FALLBACK since"), "{out}");
    // The open lane keeps counting: a visitor walks through the free turnstile.
    assert!(d.gates[0].walk(hal::gate::Direction::Entry));
    wait_until("free passage recorded", LOG_BOUND, || {
        !outbox_rows(&d.state(), "free_passage").is_empty()
    })
    .await;

    // Mains back: everything returns by itself.
    d.ups.set("ups.status", "OL CHRG");
    d.wait_for_mode("normal").await;
    d.wait_gates([GateMode::Normal, GateMode::Normal]).await;
    let (rc, _, err) = d.gatectl(&["lane", "east-1", "mode", "normal"]).await;
    assert_eq!(rc, 0, "{err}");
    assert!(logind.calls().is_empty(), "{:?}", logind.calls());

    // The UPS's primary orders a shutdown: no debounce.
    d.ups.set("ups.status", "FSD OB LB");
    let calls = logind.wait_for_power_off().await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[0],
        Call::Inhibit {
            what: "shutdown".into(),
            who: "gated".into(),
            why: "opening the gates and saving every record before power-off".into(),
            mode: "delay".into(),
        }
    );
    let Call::PowerOff {
        interactive,
        snapshot,
    } = &calls[1]
    else {
        panic!("{calls:?}")
    };
    assert!(!interactive);
    // At PowerOff: the gates were already safe and the record was on disk.
    assert_eq!(snapshot, "g1=Free g2=Locked shutdown_rows=1");
    wait_until("inhibitor released", LOG_BOUND, || {
        logind.inhibitors_released()
    })
    .await;
    assert_eq!(d.mode().await, "shutdown");
    assert!(
        gated.child.try_wait().unwrap().is_none(),
        "gated exited by itself"
    );
    // Every transition is on record, the brownout is not one of them.
    assert_eq!(
        d.transitions(),
        [
            "normal->power_fallback",
            "power_fallback->normal",
            "normal->shutdown"
        ]
    );
    gated.stop().await;
}

/// A fire alarm from the turnstile controller's input opens every gate,
/// overrides the power fallback and lane commands, and (as configured here)
/// ends only when the input clears and an engineer resets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_alarm_over_modbus_opens_every_gate_until_reset() {
    let d = Device::start("[fire]\nreset_by_engineer = true\n").await;
    let _logind = FakeLogind::start(&d.bus.address, String::new).await;
    let gated = d.gated().await;
    let (rc, _, err) = d.gatectl(&["lane", "east-2", "mode", "locked"]).await;
    assert_eq!(rc, 0, "{err}");

    // Mains is lost first: east-2 locks as its power-fail mode says.
    d.ups.set("ups.status", "OB DISCHRG");
    d.wait_for_mode("power_fallback").await;
    d.gates[1]
        .wait_until(|g| g.mode() == GateMode::Locked)
        .await;

    // The fire alarm overrides it: every gate opens.
    d.gates[1].set_fire(true);
    d.wait_for_mode("fire_alarm").await;
    d.wait_gates([GateMode::Free, GateMode::Free]).await;
    let cause: String = d.prop("OperatingModeCause").await;
    assert!(
        cause.contains("fire alarm from gate of lane east-2"),
        "{cause}"
    );
    let (rc, _, err) = d.gatectl(&["lane", "east-1", "mode", "locked"]).await;
    assert_ne!(rc, 0);
    assert!(err.contains("fire alarm"), "{err}");
    let (rc, _, err) = d.gatectl(&["alarm", "reset"]).await;
    assert_ne!(rc, 0);
    assert!(err.contains("still active"), "{err}");

    // The input clears: still open, until an engineer resets.
    d.gates[1].set_fire(false);
    d.wait_for_prop("FireResetPending", true).await;
    assert_eq!(d.mode().await, "fire_alarm");
    assert_eq!(d.gates[1].mode(), GateMode::Free);
    let (rc, out, err) = d.gatectl(&["alarm", "reset"]).await;
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("fire alarm reset"), "{out}");
    // Still on battery: each lane takes its power-fail mode, not its old one.
    d.wait_for_mode("power_fallback").await;
    d.gates[1]
        .wait_until(|g| g.mode() == GateMode::Locked)
        .await;
    d.ups.set("ups.status", "OL");
    d.wait_for_mode("normal").await;
    // Back to the operator's modes: east-2 was locked by hand.
    d.wait_gates([GateMode::Normal, GateMode::Locked]).await;
    assert_eq!(
        d.transitions(),
        [
            "normal->power_fallback",
            "power_fallback->fire_alarm",
            "fire_alarm->power_fallback",
            "power_fallback->normal"
        ]
    );
    assert_eq!(outbox_rows(&d.state(), "alarm_reset").len(), 1);
    gated.stop().await;
}

/// Peak mode: the group's lanes admit entries only (the exit lane takes
/// entries, the two-way lane's exit side is closed), recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_mode_is_switched_per_lane_group() {
    // A third lane of the group: the way out, through its own turnstile.
    let exit_dir = tempfile::tempdir().unwrap();
    let g3 = SimGate::new(GateKind::Turnstile, RegisterMap::load("lot").unwrap(), 1);
    g3.set_auto_walk(true);
    let (a3, _server) = g3.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let s3 = SimScanner::new(Pty::open_at(&exit_dir.path().join("s3")).unwrap());
    let d = Device::start(&format!(
        "[devices.gates.g3]\nmodbus = \"tcp://{a3}\"\npoll_ms = 10\n\
         [devices.scanners.s3]\nport = \"{}\"\n\
         [lanes.east-3]\ndirection = \"exit\"\ngroup = \"east\"\ngate = \"g3\"\nscanners = [\"s3\"]\n",
        s3.pty.path().display()
    ))
    .await;
    // A ticket for any number of entries, signed with a key the device knows.
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let now = gated::lanes::local_now(&jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    offline_tickets::seed_store(&d.state(), &key);
    let ticket = offline_tickets::ticket(&key, 4242, 0, now);
    let gate3 = format!("device=\"gate tcp://{a3} unit 1\"");
    let gated = d
        .gated_waiting_for(&[
            &["device=\"s3\"", "connected"],
            &[gate3.as_str(), "connected"],
        ])
        .await;
    // Normally the exit lane lets a visitor out.
    s3.scan(&ticket).await.unwrap();
    tokio::time::timeout(LOG_BOUND, g3.wait_until(|g| g.counters() == [0, 1]))
        .await
        .expect("the exit lane lets the visitor out");

    let (rc, _, err) = d.gatectl(&["peak", "west", "on"]).await;
    assert_ne!(rc, 0);
    assert!(err.contains("no lane group \"west\""), "{err}");
    let (rc, out, err) = d.gatectl(&["peak", "east", "on"]).await;
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("peak mode on for lane group east"), "{out}");
    assert_eq!(d.prop::<Vec<String>>("PeakGroups").await, ["east"]);
    // The two-way lane's exit side is closed to the crowd coming in.
    d.scanners[2].scan("ANY-CODE").await.unwrap();
    wait_until("an exit scan refused at peak", LOG_BOUND, || {
        lane_json(&d, "east-2").is_some_and(|l| l["last"].to_string().contains("entry_only"))
    })
    .await;
    // The exit lane takes the crowd coming in: the same ticket, the other way.
    s3.scan(&ticket).await.unwrap();
    tokio::time::timeout(LOG_BOUND, g3.wait_until(|g| g.counters() == [1, 1]))
        .await
        .expect("at peak the exit lane lets the visitor in");
    let (_, out, _) = d
        .gatectl(&["status", "-c", &d.config().display().to_string()])
        .await;
    assert!(out.contains("peak          lane group(s) east"), "{out}");
    let (rc, _, _) = d.gatectl(&["peak", "east", "off"]).await;
    assert_eq!(rc, 0);
    assert!(d.prop::<Vec<String>>("PeakGroups").await.is_empty());
    let peaks = outbox_rows(&d.state(), "peak");
    assert_eq!(peaks.len(), 2);
    assert_eq!(peaks[0]["on"], true);
    assert_eq!(peaks[1]["on"], false);
    gated.stop().await;
}

/// The UPS over UPower (a fake on the private bus): mains lost, then the
/// battery's warning level goes to low, and the device shuts down in order.
/// Every transition is also a `Device1.Transition` signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_battery_over_upower_then_low_battery_shuts_down_with_signals() {
    use futures_util::StreamExt;
    let d = Device::start_with(Some("upower = true\ndebounce_ms = 200\ngrace_s = 0\n"), "").await;
    let upower = hal::power::sim::SimUPower::start(&d.bus.address)
        .await
        .unwrap();
    let (g1, g2) = (d.gates[0].clone(), d.gates[1].clone());
    let logind = FakeLogind::start(&d.bus.address, move || {
        format!("g1={:?} g2={:?}", g1.mode(), g2.mode())
    })
    .await;
    let gated = d.gated().await;
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("cn.scenicpark.Gated.Device1")
        .member("Transition")
        .build()
        .unwrap();
    let mut signals = zbus::MessageStream::for_match_rule(rule, &d.conn, None)
        .await
        .unwrap();

    upower.set_on_battery(true).await.unwrap();
    upower.set_battery(64.0, 1800, 1).await.unwrap();
    d.wait_for_mode("power_fallback").await;
    d.wait_gates([GateMode::Free, GateMode::Locked]).await;
    // UPower's warning level 3: the battery is low (at a charge still above
    // low_percent, so the UPS's word is what counts here).
    upower.set_battery(30.0, 240, 3).await.unwrap();
    let calls = logind.wait_for_power_off().await;
    assert!(matches!(calls[0], Call::Inhibit { .. }), "{calls:?}");
    assert!(
        matches!(&calls[1], Call::PowerOff { snapshot, .. } if snapshot == "g1=Free g2=Locked"),
        "{calls:?}"
    );
    let cause: String = d.prop("OperatingModeCause").await;
    assert!(cause.contains("battery low"), "{cause}");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let m = tokio::time::timeout(LOG_BOUND, signals.next())
            .await
            .expect("Transition signals")
            .unwrap()
            .unwrap();
        let (from, to, _cause): (String, String, String) = m.body().deserialize().unwrap();
        seen.push(format!("{from}->{to}"));
    }
    assert_eq!(seen, ["normal->power_fallback", "power_fallback->shutdown"]);
    assert_eq!(d.transitions(), seen);
    gated.stop().await;
}
