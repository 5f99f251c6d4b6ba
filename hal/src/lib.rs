//! Device access for the kiosk and gate appliance.
//!
//! One module per device family (printer, scanners, ID/IC readers, gates,
//! power inputs), each with the same shape: what the rest of the appliance
//! uses (a trait, or a [`Device`] event stream), a pure codec for its wire
//! protocol, the real backend on its real transport, and a simulator
//! (feature `sim`) speaking the same bytes on the far end of a PTY.
//!
//! Invariant: hal knows nothing of tickets, orders or lanes.

pub mod display;
pub mod gate;
pub mod gpio;
pub mod iccard;
pub mod idcard;
pub mod lines;
pub mod node;
pub mod power;
pub mod printer;
#[cfg(feature = "sim")]
pub mod pty;
pub mod scanner;
pub mod serial;
pub mod supervise;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use supervise::DeviceState;

/// A running event source (scanner, card reader): its events and its
/// connection state. The device task stops when this is dropped.
#[derive(Debug)]
pub struct Device<E> {
    events: mpsc::Receiver<E>,
    state: watch::Receiver<DeviceState>,
    task: JoinHandle<()>,
}

impl<E> Device<E> {
    pub(crate) fn new(
        events: mpsc::Receiver<E>,
        state: watch::Receiver<DeviceState>,
        task: JoinHandle<()>,
    ) -> Self {
        Device {
            events,
            state,
            task,
        }
    }

    /// The next event; None only if the device task ended.
    pub async fn next(&mut self) -> Option<E> {
        self.events.recv().await
    }

    /// An event already waiting, without waiting for one.
    pub fn try_next(&mut self) -> Option<E> {
        self.events.try_recv().ok()
    }

    /// The connection state now.
    pub fn state(&self) -> DeviceState {
        self.state.borrow().clone()
    }

    /// Follows the connection state.
    pub fn watch_state(&self) -> watch::Receiver<DeviceState> {
        self.state.clone()
    }
}

/// Aborts a task when dropped: ties a background task to its handle.
#[derive(Debug)]
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<E> Drop for Device<E> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
