//! The service manager's side channel: readiness, watchdog and stopping
//! notifications (sd_notify(3)). Without `NOTIFY_SOCKET` every call is a no-op,
//! so gated runs the same by hand.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd that every configured subsystem is up.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd that gated is shutting down, so a slow stop is not a hang.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Proves liveness to systemd's watchdog.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3)
/// recommends; `None` when systemd armed no watchdog for this process.
pub fn watchdog_interval() -> Option<Duration> {
    // WATCHDOG_USEC=0 means no watchdog (and a zero interval would panic).
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}
