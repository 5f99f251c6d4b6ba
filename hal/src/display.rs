//! Lane displays: the text panel on a gate that tells the visitor what
//! happened ("请通行 Please pass", "票已使用 Ticket already used"). The common
//! kind takes one line of GB18030 text per message over serial, ended by CR
//! LF; vendors with a framed protocol are one more backend.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use crate::printer::escpos::encode_gbk;
use crate::serial;

/// A line display on a serial port; reopened after an error.
#[derive(Debug)]
pub struct LineDisplay {
    path: PathBuf,
    baud: u32,
    port: Option<tokio_serial::SerialStream>,
}

impl LineDisplay {
    pub fn new(path: &Path, baud: u32) -> Self {
        LineDisplay {
            path: path.to_owned(),
            baud,
            port: None,
        }
    }

    /// Shows one message (control characters removed). An error names the
    /// port; the next message tries again.
    pub async fn show(&mut self, text: &str) -> Result<(), String> {
        if self.port.is_none() {
            self.port = Some(serial::open(&self.path, self.baud)?);
        }
        let clean: String = text.chars().filter(|c| !c.is_control()).collect();
        let mut bytes = encode_gbk(&clean);
        bytes.extend_from_slice(b"\r\n");
        let port = self.port.as_mut().expect("opened above");
        if let Err(e) = port.write_all(&bytes).await {
            self.port = None;
            return Err(format!("{}: write failed: {e}", self.path.display()));
        }
        Ok(())
    }
}

/// A line display on the far end of a PTY, keeping what it showed.
#[cfg(feature = "sim")]
pub mod sim {
    use tokio::sync::watch;
    use tokio::task::JoinHandle;

    use crate::pty::Pty;

    #[derive(Debug)]
    pub struct SimDisplay {
        shown: watch::Receiver<Vec<String>>,
        task: JoinHandle<()>,
    }

    impl Drop for SimDisplay {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl SimDisplay {
        pub fn start(pty: Pty) -> Self {
            let (tx, shown) = watch::channel(Vec::new());
            let task = tokio::spawn(async move {
                let mut line = Vec::new();
                let mut buf = [0u8; 512];
                while let Ok(n @ 1..) = pty.read(&mut buf).await {
                    // Each message ends with CR LF; an empty one blanks the
                    // panel. GB18030: split on the bytes, decode each line.
                    for &b in &buf[..n] {
                        line.push(b);
                        if line.ends_with(b"\r\n") {
                            line.truncate(line.len() - 2);
                            let text = crate::printer::escpos::decode_gbk(&line);
                            tx.send_modify(|v| v.push(text));
                            line.clear();
                        }
                    }
                }
            });
            SimDisplay { shown, task }
        }

        /// Waits until `n` messages were shown in all; returns them.
        pub async fn wait_for(&self, n: usize) -> Vec<String> {
            let mut rx = self.shown.clone();
            let _ = rx.wait_for(|v| v.len() >= n).await;
            rx.borrow().to_vec()
        }

        /// Waits until what was shown so far meets `f`; returns it.
        pub async fn wait_until(&self, f: impl Fn(&[String]) -> bool) -> Vec<String> {
            let mut rx = self.shown.clone();
            let _ = rx.wait_for(|v| f(v)).await;
            rx.borrow().to_vec()
        }
    }
}
