//! The Modbus gate backend against the simulated controller over real TCP
//! (and RTU over a real PTY): every visitor script, counter wrap, timeouts,
//! exceptions, a dropped connection and reconnection.

use std::time::Duration;

use hal::DeviceState;
use hal::gate::map::RegisterMap;
use hal::gate::modbus::{self, ModbusSettings};
use hal::gate::sim::{GateKind, SimGate, TcpServer};
use hal::gate::{
    AlarmKind, Direction, Gate, GateEvent, GateHandle, GateMode, ModbusAddress, Outcome,
};
use tokio_modbus::prelude::ExceptionCode;

use Direction::{Entry, Exit};

struct Rig {
    sim: SimGate,
    gate: GateHandle,
    _server: TcpServer,
    addr: std::net::SocketAddr,
}

async fn rig(kind: GateKind, map: &str) -> Rig {
    let map = RegisterMap::load(map).unwrap();
    let sim = SimGate::new(kind, map.clone(), 1);
    let (addr, server) = sim.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut s = ModbusSettings::new(ModbusAddress::Tcp(addr.to_string()), 1, map);
    s.passage_timeout = Duration::from_millis(400);
    s.tailgate_window = Duration::from_millis(60);
    s.poll = Duration::from_millis(10);
    let gate = modbus::spawn(s);
    gate.watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    Rig {
        sim,
        gate,
        _server: server,
        addr,
    }
}

/// Opens in the background and waits until the controller got the permission.
async fn opening(r: &Rig, dir: Direction, persons: u32) -> tokio::task::JoinHandle<Outcome> {
    let gate = r.gate.clone();
    let open = tokio::spawn(async move { gate.open(dir, persons).await });
    r.sim.wait_until(|s| s.permission(dir) != 0).await;
    open
}

#[tokio::test]
async fn a_visitor_walks_through() {
    let r = rig(GateKind::Turnstile, "lot").await;
    let before = r.gate.status().await.unwrap();
    let mut unlocks = r.gate.unlocks();
    assert_eq!(*unlocks.borrow_and_update(), [0, 0]);
    let open = opening(&r, Entry, 1).await;
    // The unlock is announced once the controller took it, the visitor not yet through.
    unlocks.changed().await.unwrap();
    assert_eq!(*unlocks.borrow(), [1, 0]);
    assert!(!open.is_finished());
    assert!(r.sim.walk(Entry));
    assert_eq!(open.await.unwrap(), Outcome::Passed { persons: 1 });
    let after = r.gate.status().await.unwrap();
    assert_eq!(after.entry_counter, before.entry_counter + 1);
    assert_eq!(r.sim.permission(Entry), 0);
}

#[tokio::test]
async fn a_visitor_who_hesitates_and_leaves_does_not_pass() {
    let r = rig(GateKind::Turnstile, "lot").await;
    let open = opening(&r, Entry, 1).await;
    // Nobody walks: the passage timeout closes the gate again.
    assert_eq!(open.await.unwrap(), Outcome::NotPassed);
    assert_eq!(r.sim.permission(Entry), 0, "permission withdrawn");
    assert!(!r.sim.walk(Entry), "the arms are locked again");
}

#[tokio::test]
async fn a_group_of_three_is_one_authorisation_of_three() {
    let r = rig(GateKind::Turnstile, "lot").await;
    let open = opening(&r, Entry, 3).await;
    assert_eq!(r.sim.permission(Entry), 3);
    for _ in 0..3 {
        assert!(r.sim.walk(Entry));
    }
    assert_eq!(open.await.unwrap(), Outcome::Passed { persons: 3 });
}

#[tokio::test]
async fn a_group_on_a_pulse_controller_is_three_confirmed_pulses() {
    let r = rig(GateKind::Turnstile, "coil-example").await;
    let gate = r.gate.clone();
    let open = tokio::spawn(async move { gate.open(Entry, 3).await });
    for _ in 0..3 {
        // Each passage is granted on its own, after the previous one passed.
        r.sim.wait_until(|s| s.permission(Entry) == 1).await;
        assert!(r.sim.walk(Entry));
        assert!(!r.sim.walk(Entry), "one pulse admits one person");
    }
    assert_eq!(open.await.unwrap(), Outcome::Passed { persons: 3 });
}

#[tokio::test]
async fn part_of_a_group_turning_back_is_counted_as_it_was() {
    let r = rig(GateKind::Turnstile, "lot").await;
    let open = opening(&r, Entry, 3).await;
    assert!(r.sim.walk(Entry));
    assert!(r.sim.walk(Entry));
    assert_eq!(open.await.unwrap(), Outcome::Passed { persons: 2 });
    assert_eq!(r.sim.permission(Entry), 0);
}

#[tokio::test]
async fn tailgating_through_a_wing_gate_raises_an_alarm() {
    let r = rig(GateKind::WingGate, "lot").await;
    let mut events = r.gate.events();
    let open = opening(&r, Entry, 1).await;
    assert_eq!(r.sim.tailgate(Entry), 2);
    assert_eq!(
        open.await.unwrap(),
        Outcome::Alarm {
            kind: AlarmKind::Tailgating,
            persons: 1
        }
    );
    assert_eq!(
        events.recv().await.unwrap(),
        GateEvent::Alarm {
            kind: AlarmKind::Tailgating
        }
    );
    // The one who slipped through is inside all the same: counted.
    assert_eq!(
        events.recv().await.unwrap(),
        GateEvent::Passage {
            direction: Entry,
            count: 1
        }
    );
}

#[tokio::test]
async fn a_turnstile_stops_the_tailgater() {
    let r = rig(GateKind::Turnstile, "lot").await;
    let open = opening(&r, Entry, 1).await;
    assert_eq!(r.sim.tailgate(Entry), 1);
    assert_eq!(open.await.unwrap(), Outcome::Passed { persons: 1 });
}

#[tokio::test]
async fn pushing_the_wrong_way() {
    // Through a wing gate's open wings: a reverse passage and an alarm.
    let r = rig(GateKind::WingGate, "lot").await;
    let open = opening(&r, Entry, 1).await;
    assert!(r.sim.push_wrong_way(Entry));
    assert_eq!(
        open.await.unwrap(),
        Outcome::Alarm {
            kind: AlarmKind::Reverse,
            persons: 0
        }
    );

    // A turnstile's arms do not turn the wrong way: nothing happens.
    let r = rig(GateKind::Turnstile, "lot").await;
    let open = opening(&r, Entry, 1).await;
    assert!(!r.sim.push_wrong_way(Entry));
    assert_eq!(open.await.unwrap(), Outcome::NotPassed);
}

/// Sets the controller's counters and waits until the gate has seen them
/// (a jump that large is reported as a controller reset, not as passages).
async fn jump_counters(r: &Rig, entry: u32) {
    let mut events = r.gate.events();
    r.sim.set_counters(entry, 0);
    match events.recv().await.unwrap() {
        GateEvent::Fault { why } => assert!(why.contains("controller reset?"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn counters_are_read_across_their_wrap() {
    let r = rig(GateKind::Turnstile, "lot").await;
    jump_counters(&r, u32::MAX - 1).await;
    let open = opening(&r, Entry, 3).await;
    for _ in 0..3 {
        assert!(r.sim.walk(Entry));
    }
    assert_eq!(open.await.unwrap(), Outcome::Passed { persons: 3 });
    assert_eq!(r.gate.status().await.unwrap().entry_counter, 1);

    // 16-bit counters wrap at 65536.
    let r = rig(GateKind::Turnstile, "coil-example").await;
    jump_counters(&r, 0xFFFF).await;
    let open = opening(&r, Entry, 1).await;
    r.sim.walk(Entry);
    assert_eq!(open.await.unwrap(), Outcome::Passed { persons: 1 });
    assert_eq!(r.gate.status().await.unwrap().entry_counter, 0);
}

#[tokio::test]
async fn free_mode_passages_are_events_and_modes_are_written() {
    let r = rig(GateKind::WingGate, "lot").await;
    let mut events = r.gate.events();
    r.gate.set_mode(GateMode::Free).await.unwrap();
    assert_eq!(r.sim.mode(), GateMode::Free);
    assert!(r.sim.walk(Exit));
    assert_eq!(
        events.recv().await.unwrap(),
        GateEvent::Passage {
            direction: Exit,
            count: 1
        }
    );
    r.gate.set_mode(GateMode::Locked).await.unwrap();
    assert_eq!(r.gate.status().await.unwrap().mode, Some(GateMode::Locked));
    assert!(!r.sim.walk(Exit));
}

#[tokio::test]
async fn fire_and_alarm_inputs_are_reported() {
    let r = rig(GateKind::WingGate, "coil-example").await;
    let mut events = r.gate.events();
    r.sim.set_fire(true);
    assert_eq!(
        events.recv().await.unwrap(),
        GateEvent::Fire { active: true }
    );
    assert!(r.sim.is_open(), "wings open in fire mode");
    r.sim.set_fire(false);
    assert_eq!(
        events.recv().await.unwrap(),
        GateEvent::Fire { active: false }
    );
    r.sim.set_alarm(true);
    assert_eq!(
        events.recv().await.unwrap(),
        GateEvent::Alarm {
            kind: AlarmKind::Intrusion
        }
    );
}

#[tokio::test]
async fn an_exception_is_reported_and_the_gate_carries_on() {
    let r = rig(GateKind::Turnstile, "lot").await;
    r.sim.inject_exception(ExceptionCode::ServerDeviceFailure);
    // Whichever call meets it (a poll or this status) reports it by name.
    let mut events = r.gate.events();
    let first = r.gate.status().await;
    match first {
        Err(e) => assert!(
            e.to_string()
                .contains("Modbus exception ServerDeviceFailure"),
            "{e}"
        ),
        Ok(_) => match events.recv().await.unwrap() {
            GateEvent::Fault { why } => assert!(why.contains("ServerDeviceFailure"), "{why}"),
            other => panic!("{other:?}"),
        },
    }
    assert_eq!(
        r.gate.watch_state().borrow().clone(),
        DeviceState::Connected
    );
    let open = opening(&r, Entry, 1).await;
    r.sim.walk(Entry);
    assert_eq!(open.await.unwrap(), Outcome::Passed { persons: 1 });
}

#[tokio::test]
async fn a_silent_controller_times_out_and_is_reconnected() {
    let r = rig(GateKind::Turnstile, "lot").await;
    r.sim.set_silent(true);
    let lost = r
        .gate
        .watch_state()
        .wait_for(|s| matches!(s, DeviceState::Reconnecting { .. }))
        .await
        .unwrap()
        .to_string();
    assert!(lost.contains("no answer within 300 ms"), "{lost}");
    // While it is gone, an open is refused with the reason; nothing passes.
    match r.gate.open(Entry, 1).await {
        Outcome::Fault { why } => assert!(why.contains("not connected"), "{why}"),
        other => panic!("{other:?}"),
    }
    r.sim.set_silent(false);
    r.gate
        .watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    let open = opening(&r, Entry, 1).await;
    r.sim.walk(Entry);
    assert_eq!(open.await.unwrap(), Outcome::Passed { persons: 1 });
}

#[tokio::test]
async fn a_dropped_connection_is_rebuilt_and_passages_in_between_are_not_lost() {
    let r = rig(GateKind::Turnstile, "lot").await;
    let open = opening(&r, Entry, 1).await;
    // The connection drops just as the visitor walks through.
    drop(r._server);
    assert!(r.sim.walk(Entry));
    r.gate
        .watch_state()
        .wait_for(|s| matches!(s, DeviceState::Reconnecting { .. }))
        .await
        .unwrap();
    let (_addr, _server) = r.sim.serve_tcp(r.addr).await.unwrap();
    r.gate
        .watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    // The counter read after reconnecting confirms the passage.
    assert_eq!(open.await.unwrap(), Outcome::Passed { persons: 1 });
}

#[tokio::test]
async fn rtu_over_a_pty_with_a_crc_error_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("gate-rs485");
    let map = RegisterMap::load("lot").unwrap();
    let sim = SimGate::new(GateKind::Turnstile, map.clone(), 7);
    let rtu = sim.serve_rtu(&link, 9600).unwrap();
    let mut s = ModbusSettings::new(
        ModbusAddress::Rtu {
            port: link.clone(),
            baud: 9600,
        },
        7,
        map,
    );
    s.poll = Duration::from_millis(20);
    s.passage_timeout = Duration::from_secs(5);
    let gate = modbus::spawn(s);
    gate.watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();

    let g = gate.clone();
    let open = tokio::spawn(async move { g.open(Entry, 1).await });
    sim.wait_until(|s| s.permission(Entry) != 0).await;
    assert!(sim.walk(Entry));
    assert_eq!(open.await.unwrap(), Outcome::Passed { persons: 1 });

    // A corrupted answer is an error on the link, never a passage: the
    // connection is rebuilt and the counters still agree afterwards.
    let before = gate.status().await.unwrap().entry_counter;
    rtu.corrupt_next_answer();
    let lost = gate
        .watch_state()
        .wait_for(|s| matches!(s, DeviceState::Reconnecting { .. }))
        .await
        .unwrap()
        .to_string();
    // tokio-modbus drops a frame with a bad CRC, so it surfaces as no answer.
    assert!(lost.contains("no answer within"), "{lost}");
    gate.watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    assert_eq!(gate.status().await.unwrap().entry_counter, before);
    assert_eq!(sim.counters()[0], before);
}
