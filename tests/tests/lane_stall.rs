//! A lane's commit waits for its fsync off the runtime's workers: while one
//! lane's commit is held inside SQLite (a commit hook stands in for a slow
//! disk) and another lane waits for the store, the other gates are still
//! polled. Counted in polls, not in time: a reference gate polled from a
//! runtime of its own is the clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use gated::lane::{Admission, Engine, Medium, Presentation};
use gated::store::{Db, Store};
use hal::gate::modbus::{self, ModbusSettings};
use hal::gate::sim::{GateKind, SimGate, TcpServer};
use hal::gate::{GateHandle, ModbusAddress, RegisterMap};
use tests::offline_tickets;

/// Polls of the watched gate the test wants to see while the commit is held.
const POLLS: u64 = 20;

async fn serve(sim: &SimGate) -> (TcpServer, String) {
    let (addr, server) = sim.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (server, addr.to_string())
}

fn gate(addr: &str) -> GateHandle {
    let map = RegisterMap::load("lot").unwrap();
    let mut s = ModbusSettings::new(ModbusAddress::Tcp(addr.to_owned()), 1, map);
    s.poll = Duration::from_millis(5);
    s.passage_timeout = Duration::from_secs(30);
    s.tailgate_window = Duration::ZERO;
    modbus::spawn(s)
}

async fn connected(g: &GateHandle) {
    g.watch_state()
        .wait_for(|s| *s == hal::DeviceState::Connected)
        .await
        .unwrap();
}

#[test]
fn a_held_commit_does_not_stop_the_other_gates_polling() {
    // The simulators and the reference gate: a runtime of their own.
    let sims_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // gated's runtime: two workers, as gated runs.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sims: [SimGate; 3] = std::array::from_fn(|_| {
        SimGate::new(GateKind::Turnstile, RegisterMap::load("lot").unwrap(), 1)
    });
    for s in &sims {
        s.set_auto_walk(true);
    }
    let served: Vec<(TcpServer, String)> = sims_rt.block_on(async { serve_all(&sims).await });
    let reference = sims_rt.block_on(async {
        let g = gate(&served[2].1);
        connected(&g).await;
        g
    });

    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[1; 32]);
    offline_tickets::seed_store(dir.path(), &key);
    let mut store = Store::open(&dir.path().join("gated.db")).unwrap();
    let now = gated::lanes::local_now(&jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    // The hook holds the first commit it sees once armed.
    let armed = Arc::new(AtomicBool::new(false));
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    {
        let armed = armed.clone();
        store
            .conn()
            .commit_hook(Some(move || {
                if armed.swap(false, Ordering::SeqCst) {
                    let _ = entered_tx.send(());
                    let _ = release_rx.recv();
                }
                false
            }))
            .unwrap();
    }
    let lanes = Engine::new(Db::with_writer(store).unwrap(), "stall-test").unwrap();
    let (gate_a, gate_b) = rt.block_on(async {
        let (a, b) = (gate(&served[0].1), gate(&served[1].1));
        connected(&a).await;
        connected(&b).await;
        (a, b)
    });

    armed.store(true, Ordering::SeqCst);
    let admit = |lanes: &Engine, gate: &GateHandle, lane: &'static str, ticket: u64| {
        let medium = Medium::Code(offline_tickets::ticket(&key, ticket, 1, now));
        let (lanes, gate) = (lanes.clone(), gate.clone());
        rt.spawn(async move {
            let nonce = lanes.nonce(lane);
            let scan = Presentation {
                lane,
                lane_group: "east",
                medium: &medium,
                nonce: &nonce,
                now,
                at_ms: 0,
                gate_ledger: None,
            };
            lanes.admit(&gate, &scan).await.unwrap()
        })
    };
    let first = admit(&lanes, &gate_a, "east-1", 1);
    entered.recv().expect("lane east-1 commits");
    // Another visitor at east-2 meanwhile: that lane waits for the store.
    let second = admit(&lanes, &gate_b, "east-2", 2);

    // Watch east-2's gate while the reference gate is polled 10 × POLLS times.
    let watched = &sims[1];
    let (base, clock) = (watched.answered(), sims[2].answered());
    let polled = sims_rt.block_on(async {
        loop {
            let polls = watched.answered().saturating_sub(base) / 3;
            let ticks = sims[2].answered().saturating_sub(clock) / 3;
            if polls >= POLLS || ticks >= 10 * POLLS {
                return polls;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    release.send(()).unwrap();
    drop(reference);
    assert!(
        polled >= POLLS,
        "east-2's gate was polled {polled} times while east-1's commit was held \
         (the reference gate {} times)",
        10 * POLLS
    );
    let (a, b) = rt.block_on(async { (first.await.unwrap(), second.await.unwrap()) });
    assert_eq!(
        a,
        Admission::Admitted {
            ticket_id: 1,
            persons: 1
        }
    );
    assert_eq!(
        b,
        Admission::Admitted {
            ticket_id: 2,
            persons: 1
        }
    );
    assert_eq!(lanes.usage(1, now).unwrap().entries, 1);
    rt.shutdown_background();
    drop(served);
}

async fn serve_all(sims: &[SimGate; 3]) -> Vec<(TcpServer, String)> {
    let mut out = Vec::new();
    for s in sims {
        out.push(serve(s).await);
    }
    out
}
