//! A hex-line IC-card reader on the far end of a PTY: while a card lies on
//! it, it prints the card's UID every `repeat`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::pty::Pty;

#[derive(Debug)]
pub struct SimIcReader {
    card: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

impl Drop for SimIcReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimIcReader {
    /// Starts repeating the present card's UID every `repeat`.
    pub fn start(pty: Pty, repeat: Duration) -> Self {
        let card: Arc<Mutex<Option<String>>> = Arc::default();
        let shared = card.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(repeat);
            loop {
                tick.tick().await;
                let uid = shared.lock().expect("sim state").clone();
                if let Some(uid) = uid
                    && pty
                        .write_all(format!("{uid}\r\n").as_bytes())
                        .await
                        .is_err()
                {
                    return;
                }
            }
        });
        SimIcReader { card, task }
    }

    pub fn present(&self, uid: &str) {
        *self.card.lock().expect("sim state") = Some(uid.to_owned());
    }

    pub fn remove(&self) {
        *self.card.lock().expect("sim state") = None;
    }
}
