//! `gatectl probe` against simulated devices on real PTYs: what a field
//! engineer sees, and what scripts parse.

use std::process::{Output, Stdio};

use hal::idcard::sim::{SimIdReader, test_cards};
use hal::printer::Paper;
use hal::printer::sim::SimPrinter;
use hal::pty::Pty;
use hal::scanner::sim::SimScanner;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn gatectl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gatectl"));
    c.kill_on_drop(true);
    c
}

async fn run(args: &[&str]) -> Output {
    gatectl().args(args).output().await.unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn printer_status_and_test_print() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("printer");
    let sim = SimPrinter::start(Pty::open_at(&link).unwrap());
    let port = link.to_str().unwrap();

    let out = run(&["probe", "printer", "--port", port]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(": ready"), "{stdout}");
    assert!(stdout.contains("paper    ok"), "{stdout}");

    let out = run(&[
        "probe",
        "printer",
        "--port",
        port,
        "--test-print",
        "--device-id",
        "kiosk-7",
        "--json",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["test_print"], "ok");
    assert_eq!(v["status"]["paper"], "ok");
    let tickets = sim.wait_for_tickets(1).await;
    assert!(
        tickets[0].qr[0].starts_with("TEST kiosk-7 "),
        "{:?}",
        tickets[0]
    );

    sim.set_paper(Paper::Out);
    let out = run(&["probe", "printer", "--port", port, "--test-print"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("paper    OUT"));
    assert!(
        text(&out.stderr).contains("printer not ready: out of paper"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_missing_port_is_named() {
    let out = run(&["probe", "printer", "--port", "/dev/ttyUSB-nothing"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "gatectl: /dev/ttyUSB-nothing: no such device (unplugged?)"
    );
}

#[tokio::test]
async fn scanner_prints_each_code_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimScanner::new(Pty::open_at(&dir.path().join("scanner")).unwrap());
    let mut child = gatectl()
        .args([
            "--json",
            "probe",
            "scanner",
            "--port",
            sim.pty.path().to_str().unwrap(),
            "--count",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = stderr.next_line().await.unwrap().unwrap();
    assert!(first.starts_with("scanner connected"), "{first}");
    sim.scan("T1.ONE").await.unwrap();
    sim.scan("SN-TWO").await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let codes: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(codes, ["T1.ONE", "SN-TWO"]);
}

#[tokio::test]
async fn id_reader_masks_personal_data_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("id");
    let sim = SimIdReader::start(Pty::open_at(&link).unwrap());
    let card = test_cards()[0].clone();
    let port = link.to_str().unwrap();

    sim.present(card.clone());
    let out = run(&["probe", "id-reader", "--port", port, "--timeout", "10"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("name        张*"), "{stdout}");
    assert!(
        stdout.contains("110***********002X  (check digit ok)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&card.id_number) && !stdout.contains("张三"),
        "{stdout}"
    );

    sim.remove();
    sim.present(card.clone());
    let out = run(&[
        "--json",
        "probe",
        "id-reader",
        "--port",
        port,
        "--timeout",
        "10",
    ])
    .await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "name",
        "sex",
        "nation",
        "birth",
        "address",
        "id_number",
        "issuer",
        "valid_from",
        "valid_to",
        "check_digit_ok",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["id_number"], "110***********002X");
    assert_eq!(v["birth"], "1949-12-31");
    assert_eq!(v["valid_to"], "long-term");
    assert_eq!(v["check_digit_ok"], true);

    sim.remove();
    sim.present(card.clone());
    let out = run(&["--json", "probe", "id-reader", "--port", port, "--show-pii"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id_number"], card.id_number.as_str());
    assert_eq!(v["name"], "张三");
}

#[tokio::test]
async fn id_reader_without_a_card_times_out_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("id");
    let _sim = SimIdReader::start(Pty::open_at(&link).unwrap());
    let out = run(&[
        "probe",
        "id-reader",
        "--port",
        link.to_str().unwrap(),
        "--timeout",
        "1",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: no card presented within 1 s", link.display())),
        "{stderr}"
    );
}

#[tokio::test]
async fn ic_reader_reports_cards() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ic");
    let sim = hal::iccard::sim::SimIcReader::start(
        Pty::open_at(&link).unwrap(),
        std::time::Duration::from_millis(20),
    );
    sim.present("04A1B2C3");
    let out = run(&[
        "probe",
        "ic-reader",
        "--port",
        link.to_str().unwrap(),
        "--count",
        "1",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("present  04A1B2C3"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn gate_probe_opens_sets_modes_and_reports_counters() {
    use hal::gate::sim::{GateKind, SimGate};
    use hal::gate::{GateMode, RegisterMap};
    let sim = SimGate::new(GateKind::Turnstile, RegisterMap::load("lot").unwrap(), 3);
    sim.set_auto_walk(true);
    let (addr, _server) = sim.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let modbus = format!("tcp://{addr}");

    let out = run(&[
        "probe",
        "gate",
        "--modbus",
        &modbus,
        "--unit",
        "3",
        "--open",
        "entry",
        "--persons",
        "2",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("open entry for 2: passed (2 of 2)"),
        "{stdout}"
    );
    assert!(stdout.contains("entry counter  0 -> 2"), "{stdout}");

    let out = run(&[
        "--json", "probe", "gate", "--modbus", &modbus, "--unit", "3", "--mode", "locked",
    ])
    .await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "locked");
    assert_eq!(sim.mode(), GateMode::Locked);

    // Locked: nobody can pass, and the probe says so.
    sim.set_auto_walk(false);
    let out = run(&[
        "--json",
        "probe",
        "gate",
        "--modbus",
        &modbus,
        "--unit",
        "3",
        "--open",
        "exit",
        "--timeout",
        "1",
    ])
    .await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"]["outcome"], "not_passed");
    assert_eq!(v["after"]["exit_counter"], 0);
}

#[tokio::test]
async fn ups_probe_reads_nut() {
    use hal::power::sim::SimUpsd;
    let (upsd, addr) = SimUpsd::start("127.0.0.1:0".parse().unwrap(), "ups1")
        .await
        .unwrap();
    upsd.set("ups.status", "OB DISCHRG");
    upsd.set("battery.charge", "64");
    let out = run(&["probe", "ups", "--nut", &format!("{addr}/ups1")]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ON BATTERY, 64 %, 1800 s left"),
        "{}",
        text(&out.stdout)
    );

    let out = run(&["--json", "probe", "ups", "--nut", &format!("{addr}/ups1")]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "on_battery");
    assert_eq!(v["percent"], 64.0);
}
