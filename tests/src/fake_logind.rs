//! A fake logind (`org.freedesktop.login1`) on a private bus: records
//! `Inhibit` and `PowerOff` in order and, at `PowerOff`, takes a snapshot of
//! the world the test names (gate modes, rows on disk), so a test can check
//! what held when the power was cut. It never powers anything off.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

/// One call, in the order received.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Inhibit {
        what: String,
        who: String,
        why: String,
        mode: String,
    },
    /// With the snapshot taken when it arrived.
    PowerOff {
        interactive: bool,
        snapshot: String,
    },
    Reboot {
        interactive: bool,
    },
}

type Snapshot = Box<dyn Fn() -> String + Send + Sync>;

struct Manager {
    calls: Arc<Mutex<Vec<Call>>>,
    /// logind's end of each inhibitor pipe: EOF once the holder closed its end.
    held: Arc<Mutex<Vec<OwnedFd>>>,
    snapshot: Snapshot,
}

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl Manager {
    fn inhibit(&self, what: &str, who: &str, why: &str, mode: &str) -> zbus::OwnedFd {
        self.calls.lock().unwrap().push(Call::Inhibit {
            what: what.into(),
            who: who.into(),
            why: why.into(),
            mode: mode.into(),
        });
        let (ours, theirs) = nix::unistd::pipe().expect("pipe");
        // Non-blocking, for inhibitors_released: EAGAIN = still held.
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        fcntl(&ours, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("O_NONBLOCK");
        self.held.lock().unwrap().push(ours);
        theirs.into()
    }

    fn reboot(&self, interactive: bool) {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Reboot { interactive });
    }

    fn power_off(&self, interactive: bool) {
        let snapshot = (self.snapshot)();
        self.calls.lock().unwrap().push(Call::PowerOff {
            interactive,
            snapshot,
        });
    }
}

/// The fake, serving while it lives.
pub struct FakeLogind {
    _conn: zbus::Connection,
    calls: Arc<Mutex<Vec<Call>>>,
    held: Arc<Mutex<Vec<OwnedFd>>>,
}

impl std::fmt::Debug for FakeLogind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLogind")
            .field("calls", &self.calls)
            .finish()
    }
}

impl FakeLogind {
    /// Serves on the bus at `address`; `snapshot` runs when PowerOff arrives.
    pub async fn start(
        address: &str,
        snapshot: impl Fn() -> String + Send + Sync + 'static,
    ) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(Mutex::new(Vec::new()));
        let manager = Manager {
            calls: calls.clone(),
            held: held.clone(),
            snapshot: Box::new(snapshot),
        };
        let conn = zbus::connection::Builder::address(address)
            .serve_at("/org/freedesktop/login1", manager)
            .name("org.freedesktop.login1")
            .build()
            .await
            .expect("fake logind on the bus");
        FakeLogind {
            _conn: conn,
            calls,
            held,
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until PowerOff was called; returns every call so far.
    pub async fn wait_for_power_off(&self) -> Vec<Call> {
        crate::procs::wait_until("logind PowerOff", crate::procs::LOG_BOUND, || {
            self.calls()
                .iter()
                .any(|c| matches!(c, Call::PowerOff { .. }))
        })
        .await;
        self.calls()
    }

    /// Reboots asked for so far.
    pub fn reboots(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, Call::Reboot { .. }))
            .count()
    }

    /// True when every inhibitor taken was released (its pipe reads EOF).
    pub fn inhibitors_released(&self) -> bool {
        self.held.lock().unwrap().iter().all(|fd| {
            let mut buf = [0u8; 1];
            // EAGAIN = still held, 0 bytes = released.
            nix::unistd::read(fd, &mut buf).is_ok_and(|n| n == 0)
        })
    }
}
