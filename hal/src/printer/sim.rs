//! A thermal printer on the far end of a PTY: parses the ESC/POS stream into
//! tickets, answers status queries from its state, and can be told to run out
//! of paper, open its cover or stop answering.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::escpos::{Paper, Status, encode_paper_sensor, encode_status};
use super::stream::{Command, PrintedTicket, StreamParser, TicketAssembler};
use crate::pty::Pty;

#[derive(Debug)]
struct State {
    status: Status,
    /// Tickets that can still be printed before the roll ends; None = endless.
    paper_left: Option<u32>,
    silent: bool,
    /// Answers `GS r` (an optional command; not every printer has it).
    gs_r: bool,
    tickets: Vec<PrintedTicket>,
    /// Tickets cut short by an error.
    spoiled: u32,
}

/// Handle to a running simulated printer.
#[derive(Debug)]
pub struct SimPrinter {
    state: Arc<Mutex<State>>,
    printed: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Drop for SimPrinter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const READY: Status = Status {
    online: true,
    paper: Paper::Ok,
    cover_open: false,
    cutter_error: false,
    unrecoverable_error: false,
    auto_recoverable_error: false,
};

impl SimPrinter {
    /// Starts serving on `pty` (must be called inside a tokio runtime).
    pub fn start(pty: Pty) -> Self {
        let state = Arc::new(Mutex::new(State {
            status: READY,
            paper_left: None,
            silent: false,
            gs_r: true,
            tickets: Vec::new(),
            spoiled: 0,
        }));
        let (printed_tx, printed) = watch::channel(0);
        let task = tokio::spawn(serve(pty, state.clone(), printed_tx));
        SimPrinter {
            state,
            printed,
            task,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("sim state"))
    }

    pub fn set_paper(&self, paper: Paper) {
        self.with(|s| {
            s.status.paper = paper;
            s.status.online = ready_online(&s.status);
        });
    }

    /// The roll ends after `n` more tickets.
    pub fn set_paper_left(&self, n: Option<u32>) {
        self.with(|s| s.paper_left = n);
    }

    pub fn set_cover_open(&self, open: bool) {
        self.with(|s| {
            s.status.cover_open = open;
            s.status.online = ready_online(&s.status);
        });
    }

    pub fn set_cutter_error(&self, error: bool) {
        self.with(|s| {
            s.status.cutter_error = error;
            s.status.online = ready_online(&s.status);
        });
    }

    /// Whether `GS r` is answered (many ESC/POS printers ignore it).
    pub fn set_gs_r(&self, answers: bool) {
        self.with(|s| s.gs_r = answers);
    }

    /// A silent printer answers nothing (powered off, wrong baud rate).
    pub fn set_silent(&self, silent: bool) {
        self.with(|s| s.silent = silent);
    }

    pub fn tickets(&self) -> Vec<PrintedTicket> {
        self.with(|s| s.tickets.clone())
    }

    pub fn spoiled(&self) -> u32 {
        self.with(|s| s.spoiled)
    }

    /// Waits until at least `n` tickets have been printed in all.
    pub async fn wait_for_tickets(&self, n: usize) -> Vec<PrintedTicket> {
        let mut rx = self.printed.clone();
        let _ = rx.wait_for(|&count| count >= n).await;
        self.tickets()
    }
}

fn ready_online(s: &Status) -> bool {
    !(s.cover_open || s.paper == Paper::Out || s.cutter_error || s.unrecoverable_error)
}

async fn serve(pty: Pty, state: Arc<Mutex<State>>, printed: watch::Sender<usize>) {
    let mut parser = StreamParser::new();
    let mut assembler = TicketAssembler::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = match pty.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for cmd in parser.push(&buf[..n]) {
            let reply = {
                let mut s = state.lock().expect("sim state");
                handle(&mut s, &mut assembler, &cmd, &printed)
            };
            if let Some(byte) = reply
                && pty.write_all(&[byte]).await.is_err()
            {
                return;
            }
        }
    }
}

/// Applies one command; returns the byte to answer, if any.
fn handle(
    s: &mut State,
    assembler: &mut TicketAssembler,
    cmd: &Command,
    printed: &watch::Sender<usize>,
) -> Option<u8> {
    match cmd {
        Command::StatusQuery(n @ 1..=4) => {
            (!s.silent).then(|| encode_status(&s.status)[*n as usize - 1])
        }
        Command::StatusQuery(_) => None,
        // Answered in buffer order; a printer stopped by an error never gets here.
        Command::PaperQuery => {
            (!s.silent && s.gs_r && s.status.online).then(|| encode_paper_sensor(s.status.paper))
        }
        _ => {
            if s.paper_left == Some(0) && s.status.paper != Paper::Out {
                s.status.paper = Paper::Out;
                s.status.online = false;
            }
            if !s.status.online {
                // Nothing prints; what was under way is spoiled.
                if matches!(cmd, Command::Cut) {
                    s.spoiled += 1;
                }
                assembler.discard();
                return None;
            }
            if let Some(ticket) = assembler.add(cmd) {
                s.tickets.push(ticket);
                if let Some(left) = &mut s.paper_left {
                    *left -= 1;
                }
                printed.send_replace(s.tickets.len());
            }
            None
        }
    }
}
