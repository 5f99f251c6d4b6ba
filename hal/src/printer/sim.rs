//! A thermal printer on the far end of a PTY: parses the ESC/POS stream into
//! tickets, answers status queries from its state, and can be told to run out
//! of paper, open its cover or stop answering. Like a real one, it answers
//! `DLE EOT` at once and everything else in buffer order, after the tickets
//! before it have printed (each taking [`SimPrinter::set_print_time`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::escpos::{
    CUT_COUNTER_ID, Paper, Status, encode_counter, encode_paper_sensor, encode_status,
};
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
    /// Answers `GS g 2` (Epson's maintenance counters; optional too).
    counters: bool,
    /// Cuts made in the printer's life (counter 178).
    cuts: u32,
    /// How long a ticket takes from its first command to its cut.
    print_time: Duration,
    /// A ticket is being printed (its cut is pending).
    printing: bool,
    /// Bumped by a power cycle: what was in the buffer before is lost.
    epoch: u64,
    /// Wakes the print head when the power goes.
    power: Arc<tokio::sync::Notify>,
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
            counters: true,
            cuts: 1000,
            print_time: Duration::ZERO,
            printing: false,
            epoch: 0,
            power: Default::default(),
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

    /// Whether `GS g 2` is answered (the cut counter).
    pub fn set_counters(&self, answers: bool) {
        self.with(|s| s.counters = answers);
    }

    /// How long each ticket takes to print, up to its cut.
    pub fn set_print_time(&self, d: Duration) {
        self.with(|s| s.print_time = d);
    }

    /// Cuts made so far (counter 178).
    pub fn cuts(&self) -> u32 {
        self.with(|s| s.cuts)
    }

    /// Whether a ticket is being printed now.
    pub fn printing(&self) -> bool {
        self.with(|s| s.printing)
    }

    /// Off and on again: whatever was in the buffer is lost, unprinted.
    pub fn power_cycle(&self) {
        self.with(|s| {
            s.epoch += 1;
            s.printing = false;
            s.power.notify_waiters();
        });
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
    let pty = Arc::new(pty);
    let (tx, rx) = mpsc::unbounded_channel();
    struct Abort(JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _mechanism = Abort(tokio::spawn(mechanism(
        pty.clone(),
        state.clone(),
        rx,
        printed,
    )));
    let mut parser = StreamParser::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match pty.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for cmd in parser.push(&buf[..n]) {
            // Real-time: answered on receipt, whatever the buffer holds.
            if let Command::StatusQuery(n) = cmd {
                let reply = {
                    let s = state.lock().expect("sim state");
                    (!s.silent && (1..=4).contains(&n))
                        .then(|| encode_status(&s.status)[n as usize - 1])
                };
                if let Some(byte) = reply
                    && pty.write_all(&[byte]).await.is_err()
                {
                    return;
                }
                continue;
            }
            let epoch = state.lock().expect("sim state").epoch;
            if tx.send((epoch, cmd)).is_err() {
                return;
            }
        }
    }
}

/// The buffer and the print head: commands in order, a cut after the
/// ticket's print time.
async fn mechanism(
    pty: Arc<Pty>,
    state: Arc<Mutex<State>>,
    mut rx: mpsc::UnboundedReceiver<(u64, Command)>,
    printed: watch::Sender<usize>,
) {
    let mut assembler = TicketAssembler::default();
    let mut seen_epoch = 0;
    let power = state.lock().expect("sim state").power.clone();
    while let Some((epoch, cmd)) = rx.recv().await {
        let (delay, cut) = {
            let mut s = state.lock().expect("sim state");
            if epoch != s.epoch {
                continue; // lost in a power cycle
            }
            if epoch != seen_epoch {
                seen_epoch = epoch;
                assembler.discard();
            }
            let delay = matches!(cmd, Command::Cut) && s.status.online;
            s.printing = delay;
            // Created under the lock: a power cycle from now on wakes it.
            (delay.then_some(s.print_time), power.notified())
        };
        if let Some(d) = delay.filter(|d| !d.is_zero()) {
            // A power cycle stops the head at once.
            tokio::select! {
                () = tokio::time::sleep(d) => {}
                () = cut => {}
            }
        }
        let reply = {
            let mut s = state.lock().expect("sim state");
            if epoch != s.epoch {
                assembler.discard();
                continue;
            }
            s.printing = false;
            handle(&mut s, &mut assembler, &cmd, &printed)
        };
        if let Some(bytes) = reply
            && pty.write_all(&bytes).await.is_err()
        {
            return;
        }
    }
}

/// Applies one buffered command; returns the bytes to answer, if any.
fn handle(
    s: &mut State,
    assembler: &mut TicketAssembler,
    cmd: &Command,
    printed: &watch::Sender<usize>,
) -> Option<Vec<u8>> {
    match cmd {
        Command::StatusQuery(_) => None,
        // A printer stopped by an error never gets here.
        Command::PaperQuery => (!s.silent && s.gs_r && s.status.online)
            .then(|| vec![encode_paper_sensor(s.status.paper)]),
        Command::CounterQuery(id) => (!s.silent && s.counters && s.status.online).then(|| {
            // The other counters are not simulated: they read 0.
            encode_counter(if *id == CUT_COUNTER_ID { s.cuts } else { 0 })
        }),
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
            if matches!(cmd, Command::Cut) {
                s.cuts += 1;
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
