//! Software updates through gated (docs/updates.md): the health check after
//! a new slot boots (against a fake RAUC on a private bus, with logind's
//! Reboot recorded by a fake logind), the rollback reported to central-sim
//! in the heartbeat, a downgrade that cannot open the store, installs refused
//! while a mode forces the gates, a rollout named by central-sim and fetched
//! over its pinned TLS, and bundles refused by the real `rauc` from Debian.
//! gated runs as a process, as the image starts it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hal::gate::map::RegisterMap;
use hal::gate::sim::{GateKind, SimGate, TcpServer};
use hal::power::sim::SimUpsd;
use hal::pty::Pty;
use hal::scanner::sim::SimScanner;
use serde_json::json;
use tests::fake_logind::FakeLogind;
use tests::fake_rauc::FakeRauc;
use tests::procs::{Bus, CentralSim, Gated, LOG_BOUND, gatectl, gatectl_on_bus, wait_until};

/// A lane device: one wing gate (Modbus, with a fire input), a UPS on NUT,
/// its own private bus with a fake logind, and optionally central-sim.
struct Lane {
    dir: tempfile::TempDir,
    scanner: SimScanner,
    gate: SimGate,
    _server: TcpServer,
    ups: SimUpsd,
    bus: Bus,
    logind: FakeLogind,
    central: Option<CentralSim>,
}

impl Lane {
    /// `extra`: more of gated.toml (an `[update]` table); `gate_addr`:
    /// where the gate is configured (None: the simulator's address).
    async fn start(with_central: bool, gate_addr: Option<&str>, extra: &str) -> Lane {
        let dir = tempfile::tempdir().unwrap();
        let gate = SimGate::new(
            GateKind::WingGate,
            RegisterMap::load("coil-example").unwrap(),
            1,
        );
        let (addr, server) = gate
            .serve_tcp("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let (ups, ups_addr) = SimUpsd::start("127.0.0.1:0".parse().unwrap(), "ups")
            .await
            .unwrap();
        ups.set("ups.status", "OL");
        ups.set("battery.charge", "100");
        let bus = Bus::start(&dir.path().join("bus"), None).await;
        let scanner = SimScanner::new(Pty::open_at(&dir.path().join("s1")).unwrap());
        let logind = FakeLogind::start(&bus.address, String::new).await;
        let central = if with_central {
            Some(CentralSim::start(&dir.path().join("central"), "127.0.0.1:0").await)
        } else {
            None
        };
        let (url, ca) = match &central {
            Some(c) => (
                c.at.api.clone(),
                format!(
                    "ca_file = \"{}\"\nheartbeat_s = 1\n",
                    c.at.ca_file.display()
                ),
            ),
            None => ("https://central.invalid/api/v1".into(), String::new()),
        };
        std::fs::write(
            dir.path().join("os-release"),
            "ID=scenicpark\nIMAGE_VERSION=2\n",
        )
        .unwrap();
        let toml = format!(
            "role = \"lane\"\ndevice_id = \"upd-1\"\nstate_dir = \"{state}\"\n\
             [central]\nurl = \"{url}\"\n{ca}\
             [devices.gates.g1]\nmodbus = \"tcp://{gate}\"\nmap = \"coil-example\"\npoll_ms = 10\n\
             [devices.scanners.s1]\nport = \"{d}/s1\"\n\
             [lanes.east-1]\ndirection = \"entry\"\ngroup = \"east\"\ngate = \"g1\"\nscanners = [\"s1\"]\n\
             [power]\nnut = \"{ups_addr}/ups\"\npoll_ms = 20\ndebounce_ms = 200\ngrace_s = 600\nlow_percent = 20\n\
             [update]\nos_release = \"{d}/os-release\"\n{extra}",
            state = dir.path().join("state").display(),
            gate = gate_addr.map(str::to_owned).unwrap_or(addr.to_string()),
            d = dir.path().display(),
        );
        std::fs::write(dir.path().join("gated.toml"), toml).unwrap();
        let lane = Lane {
            dir,
            scanner,
            gate,
            _server: server,
            ups,
            bus,
            logind,
            central,
        };
        if let Some(c) = &lane.central {
            let code = c.pairing_code("upd-1", "lane", 600).await;
            let (rc, out, err) =
                gatectl(&["provision", "--code", &code, "-c", &lane.config_str()]).await;
            assert_eq!(rc, 0, "provision failed: {out}{err}");
        }
        lane
    }

    fn config_str(&self) -> String {
        self.dir.path().join("gated.toml").display().to_string()
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// As the slot the update came from left it: installed into B from A.
    fn installed(&self, version: &str) {
        std::fs::create_dir_all(self.state()).unwrap();
        std::fs::write(
            self.state().join("update.json"),
            json!({"version": version, "result": "installed",
                   "detail": "installed into slot B", "at_ms": 1,
                   "to_slot": "B", "from_slot": "A"})
            .to_string(),
        )
        .unwrap();
    }

    fn record(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.state().join("update.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    async fn gated(&self) -> Gated {
        let mut g = Gated::start_on_bus(Path::new(&self.config_str()), &self.bus.address);
        g.wait_for(&["gated ready"]).await;
        g
    }

    async fn gatectl(&self, args: &[&str]) -> (i32, String, String) {
        gatectl_on_bus(&self.bus.address, args).await
    }

    /// Waits for central-sim's last heartbeat of this device to show `result`.
    async fn heartbeat_says(&self, result: &str) -> gated::central::api::UpdateReport {
        let c = self.central.as_ref().expect("central-sim");
        let deadline = tokio::time::Instant::now() + LOG_BOUND;
        loop {
            let beats = c.stats().await.heartbeats;
            if let Some(u) = beats.iter().find_map(|b| b.update.clone())
                && u.last.as_ref().is_some_and(|l| l.result == result)
            {
                return u;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no heartbeat with update result {result:?}: {beats:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A new slot is marked good only once it is healthy (here: its gate
/// answered), and the central system hears "good" with the version and slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_slot_is_marked_good_once_its_devices_answer() {
    let lane = Lane::start(true, None, "health_deadline_s = 60\n").await;
    let rauc = FakeRauc::start(&lane.bus.address, "B", "1", "2").await;
    lane.installed("2");
    let g = lane.gated().await;
    wait_until("slot marked good", LOG_BOUND, || {
        rauc.marks().contains(&("good".into(), "booted".into()))
    })
    .await;
    // gated marks the slot first and records it next: under load the test
    // could read the record in between (seen on a loaded 2-core run).
    wait_until("the record says good", LOG_BOUND, || {
        lane.record()["result"] == "good"
    })
    .await;
    let u = lane.heartbeat_says("good").await;
    assert_eq!(u.image_version, "2");
    assert_eq!(u.booted_slot, "B");
    assert_eq!(lane.logind.reboots(), 0);
    let (rc, out, err) = lane
        .gatectl(&["update", "status", "-c", &lane.config_str()])
        .await;
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("booted     slot B"), "{out}");
    assert!(out.contains("version 2: good"), "{out}");
    assert!(out.contains("health     good"), "{out}");
    g.stop().await;
}

/// A new slot whose gate never answers is not marked good: gated reboots
/// it, and once the bootloader is back in the old slot, that slot marks the
/// new one bad, itself good, and tells the central system "rolled back"
/// with the reason. The store the new slot migrated (adding only) is the old
/// slot's store still.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_that_never_gets_healthy_is_rebooted_and_the_rollback_is_reported() {
    // Nothing listens where the gate is configured.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap().to_string();
    drop(closed);
    let lane = Lane::start(true, Some(&nowhere), "health_deadline_s = 3\n").await;
    let rauc = FakeRauc::start(&lane.bus.address, "B", "2", "3").await;
    // The store as the old slot left it.
    std::fs::create_dir_all(lane.state()).unwrap();
    drop(gated::store::Store::open(&lane.state().join("gated.db")).unwrap());
    lane.installed("3");
    let g = lane.gated().await;
    wait_until("reboot asked", LOG_BOUND, || lane.logind.reboots() == 1).await;
    g.stop().await;
    let r = lane.record();
    assert_eq!(r["result"], "installed", "{r}");
    assert_eq!(r["failed_boots"], 1, "{r}");
    let detail = r["detail"].as_str().unwrap();
    assert!(detail.contains("gate g1 never answered"), "{detail}");
    assert!(
        !rauc.marks().iter().any(|(s, _)| s == "good"),
        "{:?}",
        rauc.marks()
    );

    // Version 3's gated had migrated the shared store, as migrations may:
    // by adding only (a table, a newer schema version).
    {
        let c = rusqlite::Connection::open(lane.state().join("gated.db")).unwrap();
        let v: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        c.execute_batch("CREATE TABLE added_by_version_3 (x INTEGER)")
            .unwrap();
        c.pragma_update(None, "user_version", v + 1).unwrap();
    }
    // The bootloader's attempts are used up: it boots A again, whose gated
    // works on with that store.
    rauc.state.lock().unwrap().booted = "A".into();
    let g = lane.gated().await;
    wait_until("old slot marked good", LOG_BOUND, || {
        rauc.marks().contains(&("good".into(), "booted".into()))
    })
    .await;
    assert_eq!(rauc.marks()[0], ("bad".into(), "other".into()));
    assert_eq!(lane.record()["result"], "rolled back");
    let u = lane.heartbeat_says("rolled back").await;
    let last = u.last.unwrap();
    assert_eq!(last.version, "3");
    assert!(
        last.detail.contains("gate g1 never answered"),
        "{}",
        last.detail
    );
    assert_eq!(u.booted_slot, "A");
    // One reboot only: the old slot does not reboot for a gate it lacks.
    assert_eq!(lane.logind.reboots(), 1);
    g.stop().await;
}

/// A downgrade whose gated refuses the store (a schema it does not know and
/// may not use) fails the health check: it reboots toward the old slot and
/// leaves every byte of the store as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_slot_that_refuses_the_store_reboots_and_changes_nothing() {
    let lane = Lane::start(false, None, "").await;
    let _rauc = FakeRauc::start(&lane.bus.address, "B", "5", "4").await;
    let db = lane.state().join("gated.db");
    std::fs::create_dir_all(lane.state()).unwrap();
    drop(gated::store::Store::open(&db).unwrap());
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        c.execute("UPDATE schema_readers SET oldest = 99", [])
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    lane.installed("4");
    let mut g = Gated::start_on_bus(Path::new(&lane.config_str()), &lane.bus.address);
    g.wait_for(&["cannot open the store", "rebooting"]).await;
    wait_until("reboot asked", LOG_BOUND, || lane.logind.reboots() == 1).await;
    let status = tokio::time::timeout(LOG_BOUND, g.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success(), "gated without its store must not run");
    assert_eq!(std::fs::read(&db).unwrap(), before, "the store was changed");
    let r = lane.record();
    assert!(
        r["detail"].as_str().unwrap().contains("schema version 99"),
        "{r}"
    );
}

/// An install the power cut short (RAUC never answered) is reported at the
/// next boot as failed, in words, and the slot that runs is marked good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_cut_short_is_reported_at_the_next_boot() {
    let lane = Lane::start(false, None, "").await;
    let rauc = FakeRauc::start(&lane.bus.address, "B", "", "2").await;
    std::fs::create_dir_all(lane.state()).unwrap();
    std::fs::write(
        lane.state().join("update.json"),
        json!({"version": "", "result": "installing", "detail": "installing /data/v3.raucb",
               "at_ms": 1, "to_slot": "", "from_slot": "B"})
        .to_string(),
    )
    .unwrap();
    let g = lane.gated().await;
    wait_until("slot marked good", LOG_BOUND, || {
        rauc.marks().contains(&("good".into(), "booted".into()))
    })
    .await;
    let r = lane.record();
    assert_eq!(r["result"], "failed", "{r}");
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains("installing /data/v3.raucb was interrupted"),
        "{r}"
    );
    assert_eq!(lane.logind.reboots(), 0);
    g.stop().await;
}

/// A new slot whose gated never runs (here: none at all) is still rebooted:
/// the watchdog finds it on trial long after boot. A slot not on trial is
/// left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_reboots_a_slot_on_trial_that_gated_never_judged() {
    let lane = Lane::start(false, None, "").await;
    let rauc = FakeRauc::start(&lane.bus.address, "B", "1", "2").await;
    let state = lane.state().display().to_string();
    std::fs::create_dir_all(lane.state()).unwrap();
    let (rc, out, err) = lane
        .gatectl(&["update", "watchdog", "--state-dir", &state])
        .await;
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("nothing on trial"), "{out}");
    lane.installed("2");
    let (rc, out, err) = lane
        .gatectl(&["update", "watchdog", "--state-dir", &state])
        .await;
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("rebooting"), "{out}");
    assert_eq!(lane.logind.reboots(), 1);
    let r = lane.record();
    assert_eq!(r["failed_boots"], 1, "{r}");
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains("gated never judged it"),
        "{r}"
    );
    // Back in the old slot: nothing on trial there.
    rauc.state.lock().unwrap().booted = "A".into();
    let (_, out, _) = lane
        .gatectl(&["update", "watchdog", "--state-dir", &state])
        .await;
    assert!(out.contains("nothing on trial"), "{out}");
    assert_eq!(lane.logind.reboots(), 1);
}

/// No install while the gates are forced open by the UPS or a fire alarm:
/// the engineer is told why, and RAUC is never asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_is_refused_in_power_fallback_and_fire_alarm() {
    let lane = Lane::start(false, None, "").await;
    let rauc = FakeRauc::start(&lane.bus.address, "A", "1", "").await;
    let bundle = lane.dir.path().join("v2.raucb");
    std::fs::write(&bundle, b"any bytes: never read").unwrap();
    let mut g = lane.gated().await;
    let b = bundle.display().to_string();

    lane.ups.set("ups.status", "OB");
    g.wait_for(&["power_fallback"]).await;
    let (rc, _, err) = lane.gatectl(&["update", "install", &b]).await;
    assert_eq!(rc, 1);
    assert!(err.contains("power fallback"), "{err}");

    lane.ups.set("ups.status", "OL");
    g.wait_for(&["normal"]).await;
    lane.gate.set_fire(true);
    g.wait_for(&["fire_alarm"]).await;
    let (rc, _, err) = lane.gatectl(&["update", "install", &b]).await;
    assert_eq!(rc, 1);
    assert!(err.contains("fire alarm"), "{err}");
    assert!(rauc.installs().is_empty(), "{:?}", rauc.installs());
    g.stop().await;
}

/// Neither the install nor the reboot cuts a visitor short: between the
/// unlock and the passage the update waits, and goes on once they passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_waits_for_the_passage_under_way() {
    let lane = Lane::start(true, None, "").await;
    let rauc = FakeRauc::start(&lane.bus.address, "A", "2", "1").await;
    rauc.state.lock().unwrap().bundle_version = "3".into();
    let bundle = lane.dir.path().join("v3.raucb");
    std::fs::write(&bundle, b"the fake RAUC does not read it").unwrap();
    let c = lane.central.as_ref().unwrap();
    let sold = c.admin("/sim/sell", json!({})).await;
    let (id, token) = (
        sold["ticket_id"].as_i64().unwrap(),
        sold["token"].as_str().unwrap(),
    );
    let mut g = lane.gated().await;
    let state = lane.state();
    wait_until("the ticket synced", LOG_BOUND, || {
        tests::procs::db_count(
            &state,
            &format!("SELECT COUNT(*) FROM tickets WHERE id = {id}"),
        ) == 1
    })
    .await;
    lane.scanner.scan(token).await.unwrap();
    wait_until("the gate unlocked", LOG_BOUND, || {
        lane.gate.permission(hal::gate::Direction::Entry) > 0
    })
    .await;
    // gatectl follows the install to its end, so it runs beside the test.
    let (bus, b) = (lane.bus.address.clone(), bundle.display().to_string());
    let install =
        tokio::spawn(async move { gatectl_on_bus(&bus, &["update", "install", &b]).await });
    let deadline = tokio::time::Instant::now() + LOG_BOUND;
    loop {
        let (_, out, _) = lane
            .gatectl(&["update", "status", "-c", &lane.config_str()])
            .await;
        if out.contains("operation  waiting") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never waiting: {out}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rauc.installs().is_empty(), "installed during a passage");
    assert!(lane.gate.walk(hal::gate::Direction::Entry));
    g.wait_for(&["admitted"]).await;
    wait_until("reboot asked", LOG_BOUND, || lane.logind.reboots() == 1).await;
    assert_eq!(rauc.installs().len(), 1);
    let (rc, out, err) = install.await.unwrap();
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("version 3 installed"), "{out}");
    g.stop().await;
}

/// The central system names a version in its heartbeat answer: gated
/// fetches the bundle over the pinned TLS, refuses it when its SHA-256 is
/// not the one named, installs a good one through RAUC and reboots into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_named_by_the_central_system_is_checked_installed_and_rebooted_into() {
    let lane = Lane::start(true, None, "").await;
    let rauc = FakeRauc::start(&lane.bus.address, "A", "2", "1").await;
    rauc.state.lock().unwrap().bundle_version = "4".into();
    let c = lane.central.as_ref().unwrap();
    let bundles = lane.dir.path().join("central/bundles");
    std::fs::create_dir_all(&bundles).unwrap();
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(bundles.join("v3.raucb"), &bytes).unwrap();
    std::fs::write(bundles.join("v4.raucb"), &bytes).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let g = lane.gated().await;

    // A hash that does not match: nothing installed, "failed" reported.
    c.admin(
        "/sim/rollout",
        json!({"device_id": "upd-1", "version": "3",
               "url": format!("{}/bundles/v3.raucb", c.at.api), "sha256": "00".repeat(32)}),
    )
    .await;
    let u = lane.heartbeat_says("failed").await;
    assert!(u.last.unwrap().detail.contains("SHA-256"));
    assert!(rauc.installs().is_empty());

    // The right one, for every device: downloaded, installed, rebooted into
    // at once (no quiet window configured).
    c.admin("/sim/rollout", json!({"device_id": "upd-1", "version": ""}))
        .await;
    c.admin(
        "/sim/rollout",
        json!({"device_id": "*", "version": "4",
               "url": format!("{}/bundles/v4.raucb", c.at.api), "sha256": sha}),
    )
    .await;
    wait_until("reboot asked", LOG_BOUND, || lane.logind.reboots() == 1).await;
    let installs = rauc.installs();
    assert_eq!(installs.len(), 1);
    assert_eq!(
        std::fs::read(&installs[0]).ok(),
        None,
        "download left behind"
    );
    let r = lane.record();
    assert_eq!(r["result"], "installed");
    assert_eq!(r["version"], "4");
    assert_eq!(r["to_slot"], "B");
    g.stop().await;
}

/// The real `rauc service` (Debian's) on the device's bus: a bundle signed
/// by a key the device does not trust, and one cut short, are refused, and
/// the engineer reads why in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_rauc_refuses_a_foreign_and_a_damaged_bundle() {
    let lane = Lane::start(false, None, "").await;
    let d = lane.dir.path();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let script = repo.join("image/rauc/bundle");
    // A root filesystem image, and bundles from the device's CA and another.
    let rootfs = d.join("rootfs.ext4");
    let files = d.join("rootfs");
    std::fs::create_dir_all(&files).unwrap();
    // Content that does not compress away (a bundle holds at least 4 KiB).
    let noise: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(files.join("gated"), noise).unwrap();
    let ok = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&files)
        .arg(&rootfs)
        .arg("8M")
        .status()
        .unwrap();
    assert!(ok.success());
    let bundle = |ca: &str, name: &str| {
        let out = std::process::Command::new(&script)
            .arg(&rootfs)
            .arg("7")
            .arg(d.join(name))
            .env("RAUC_DEV_CA", d.join(ca))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        d.join(name)
    };
    let good = bundle("ca", "good.raucb");
    let foreign = bundle("other-ca", "foreign.raucb");
    let cut = d.join("cut.raucb");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    // RAUC as the image configures it, with two slot files and no bootloader.
    for s in ["slot-a.img", "slot-b.img"] {
        std::fs::write(d.join(s), vec![0u8; 1 << 20]).unwrap();
    }
    std::fs::create_dir_all(d.join("rauc-data")).unwrap();
    std::fs::write(
        d.join("system.conf"),
        format!(
            "[system]\ncompatible=scenicpark-qemux86-64\nbootloader=noop\nbundle-formats=-plain\n\
             data-directory={d}/rauc-data\n[keyring]\npath={d}/ca/ca.cert.pem\n\
             [slot.rootfs.0]\ndevice={d}/slot-a.img\ntype=raw\nbootname=A\n\
             [slot.rootfs.1]\ndevice={d}/slot-b.img\ntype=raw\nbootname=B\n",
            d = d.display()
        ),
    )
    .unwrap();
    let mut rauc = tokio::process::Command::new("rauc")
        .arg(format!("--conf={}", d.join("system.conf").display()))
        .arg(format!("--mount={}", d.join("mnt").display()))
        .args(["service", "--override-boot-slot=A"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &lane.bus.address)
        .kill_on_drop(true)
        .spawn()
        .expect("rauc (Debian package rauc) starts");
    let g = lane.gated().await;
    let status = || async {
        let (_, out, _) = lane
            .gatectl(&["update", "status", "-c", &lane.config_str()])
            .await;
        out
    };
    let deadline = tokio::time::Instant::now() + LOG_BOUND;
    while !status().await.contains("booted     slot A") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "RAUC never answered: {}",
            status().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (rc, _, err) = lane
        .gatectl(&["update", "install", &foreign.display().to_string()])
        .await;
    assert_eq!(rc, 1, "{err}");
    assert!(
        err.contains("not signed by a key this device trusts"),
        "{err}"
    );
    assert!(err.contains("RAUC: "), "RAUC's own words too: {err}");

    let (rc, _, err) = lane
        .gatectl(&["update", "install", &cut.display().to_string()])
        .await;
    assert_eq!(rc, 1, "{err}");
    assert!(
        err.contains("not a complete, undamaged RAUC bundle"),
        "{err}"
    );

    let out = status().await;
    assert!(out.contains("failed"), "{out}");
    // Neither slot was touched.
    for s in ["slot-a.img", "slot-b.img"] {
        assert!(
            std::fs::read(d.join(s)).unwrap().iter().all(|b| *b == 0),
            "{s} written"
        );
    }
    g.stop().await;
    let _ = rauc.kill().await;
}
