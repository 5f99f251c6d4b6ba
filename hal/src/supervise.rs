//! Keeps a device connected: open it, run it until it fails, report why, wait
//! with backoff, open it again. A dropped device degrades only itself.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

/// How a device is doing, as gated and gatectl report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeviceState {
    /// First attempt under way.
    Connecting,
    Connected,
    /// Lost or not there yet; retrying.
    Reconnecting {
        attempt: u32,
        error: String,
    },
    /// Retried [`FAILED_AFTER`] times without success; still retrying, slowly.
    Failed {
        error: String,
    },
}

impl std::fmt::Display for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceState::Connecting => f.write_str("connecting"),
            DeviceState::Connected => f.write_str("connected"),
            DeviceState::Reconnecting { attempt, error } => {
                write!(f, "reconnecting (attempt {attempt}): {error}")
            }
            DeviceState::Failed { error } => write!(f, "failed: {error}"),
        }
    }
}

/// Consecutive failed attempts after which a device is reported as failed.
pub const FAILED_AFTER: u32 = 5;

/// Backoff between attempts: doubles from `min` up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt + 1` (attempts count from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        (self.min * factor).min(self.max)
    }
}

/// Runs `session` forever: each call opens the device and runs it until it
/// fails. `session` reports the connection through the callback it gets.
/// Returns only if `session` returns `Ok(())` (an orderly stop).
pub async fn supervise<F, Fut>(
    name: &str,
    backoff: Backoff,
    state: watch::Sender<DeviceState>,
    mut session: F,
) where
    F: FnMut(Connected) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut attempt = 0u32;
    loop {
        let connected = Connected {
            state: state.clone(),
            name: name.to_owned(),
        };
        match session(connected).await {
            Ok(()) => return,
            Err(error) => {
                // A session that got connected resets the count.
                if *state.borrow() == DeviceState::Connected {
                    attempt = 0;
                }
                attempt += 1;
                warn!(device = name, attempt, "{error}");
                let next = if attempt >= FAILED_AFTER {
                    DeviceState::Failed { error }
                } else {
                    DeviceState::Reconnecting { attempt, error }
                };
                state.send_replace(next);
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
        }
    }
}

/// Starts a device task that keeps `session` connected (see [`supervise`]):
/// each call gets the connection callback and the sender for its events.
/// Must be called inside a tokio runtime.
pub fn spawn_supervised<E, F, Fut>(
    name: String,
    capacity: usize,
    mut session: F,
) -> crate::Device<E>
where
    E: Send + 'static,
    F: FnMut(Connected, tokio::sync::mpsc::Sender<E>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    let (state_tx, state_rx) = watch::channel(DeviceState::Connecting);
    let task = tokio::spawn(async move {
        supervise(&name, Backoff::default(), state_tx, |c| {
            session(c, tx.clone())
        })
        .await;
    });
    crate::Device::new(rx, state_rx, task)
}

/// Given to a session; call [`Connected::up`] once the device answered.
#[derive(Debug)]
pub struct Connected {
    state: watch::Sender<DeviceState>,
    name: String,
}

impl Connected {
    pub fn up(&self) {
        if *self.state.borrow() != DeviceState::Connected {
            info!(device = self.name, "connected");
            self.state.send_replace(DeviceState::Connected);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff::default();
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(4), Duration::from_millis(800));
        assert_eq!(b.delay(30), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_reported_then_marked_failed() {
        let (tx, mut rx) = watch::channel(DeviceState::Connecting);
        let task = tokio::spawn(supervise("x", Backoff::default(), tx, |_c| async {
            Err("no such file".to_owned())
        }));
        let mut seen = Vec::new();
        while seen.len() < FAILED_AFTER as usize {
            rx.changed().await.unwrap();
            seen.push(rx.borrow().clone());
        }
        task.abort();
        assert_eq!(
            seen[0],
            DeviceState::Reconnecting {
                attempt: 1,
                error: "no such file".into()
            }
        );
        assert_eq!(
            seen[4],
            DeviceState::Failed {
                error: "no such file".into()
            }
        );
        assert_eq!(seen[4].to_string(), "failed: no such file");
    }
}
