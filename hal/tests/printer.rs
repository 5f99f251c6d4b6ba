//! The serial printer backend against the simulated printer, through a real PTY.

use std::time::Duration;

use hal::printer::escpos::{Align, QrEcc, TicketBuilder};
use hal::printer::sim::SimPrinter;
use hal::printer::{Completion, Paper, PrinterError, SerialPrinter, TicketPrinter};
use hal::pty::Pty;

fn ticket(serial: &str) -> Vec<u8> {
    TicketBuilder::new()
        .align(Align::Center)
        .size(2, 2)
        .line("测试景区 Test Park")
        .size(1, 1)
        .line("成人票 Adult ¥120")
        .qr(&format!("T1.{serial}"), 6, QrEcc::M)
        .unwrap()
        .barcode128(serial)
        .unwrap()
        .feed(2)
        .cut()
}

/// The ticket under way failed because the paper ran out.
fn assert_failed_out_of_paper(err: &PrinterError) {
    assert!(
        matches!(
            err,
            PrinterError::Failed {
                problem: "out of paper",
                ..
            }
        ),
        "{err}"
    );
}

struct Rig {
    _dir: tempfile::TempDir,
    sim: SimPrinter,
    printer: SerialPrinter,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let pty = Pty::open_at(&dir.path().join("printer")).unwrap();
    let mut printer = SerialPrinter::new(pty.path(), 115_200);
    printer.timeout = Duration::from_millis(300);
    printer.print_timeout = Duration::from_millis(500);
    printer.probe_timeout = Duration::from_millis(300);
    Rig {
        sim: SimPrinter::start(pty),
        printer,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_ticket_prints_and_the_simulator_reads_it_back() {
    let mut r = rig();
    let status = r.printer.print(&ticket("SN0001")).await.unwrap();
    assert!(status.ready());
    let tickets = r.sim.wait_for_tickets(1).await;
    // ¥ prints as the full-width ￥ that printer fonts carry.
    assert_eq!(
        tickets[0].lines,
        ["测试景区 Test Park", "成人票 Adult ￥120"]
    );
    assert_eq!(tickets[0].qr, ["T1.SN0001"]);
    assert_eq!(tickets[0].barcodes, ["SN0001"]);
}

/// `GS r` is optional: a printer that ignores it still prints, each ticket
/// once, confirmed by its status after the print time; one that runs out of
/// paper mid-ticket is still caught.
#[tokio::test]
async fn a_printer_without_gs_r_is_confirmed_by_its_status_after_the_print_time() {
    let mut r = rig();
    r.sim.set_gs_r(false);
    r.printer.print_speed_mm_s = 2000;
    assert_eq!(
        r.printer.completion().await.unwrap(),
        Completion::StatusAfterPrintTime
    );
    r.printer.print(&ticket("SN0101")).await.unwrap();
    r.printer.print(&ticket("SN0102")).await.unwrap();
    let qrs: Vec<_> = r.sim.tickets().iter().map(|t| t.qr.clone()).collect();
    assert_eq!(qrs, [["T1.SN0101"], ["T1.SN0102"]]);
    r.sim.set_paper_left(Some(0));
    let err = r.printer.print(&ticket("SN0103")).await.unwrap_err();
    assert_failed_out_of_paper(&err);
    assert_eq!(r.sim.tickets().len(), 2);
}

#[tokio::test]
async fn a_printer_with_gs_r_is_confirmed_in_buffer_order() {
    let mut r = rig();
    assert_eq!(
        r.printer.completion().await.unwrap(),
        Completion::BufferOrder
    );
    // A longer ticket takes longer on paper.
    let short = r.printer.print_time(&ticket("S"));
    let long = r
        .printer
        .print_time(&[ticket("S"), vec![b'\n'; 40]].concat());
    assert!(long > short, "{long:?} vs {short:?}");
}

#[tokio::test]
async fn status_reports_paper_near_end_but_still_prints() {
    let mut r = rig();
    r.sim.set_paper(Paper::NearEnd);
    let s = r.printer.status().await.unwrap();
    assert_eq!(s.paper, Paper::NearEnd);
    assert!(s.ready());
    r.printer.print(&ticket("SN0002")).await.unwrap();
}

#[tokio::test]
async fn paper_out_refuses_the_print_and_prints_nothing() {
    let mut r = rig();
    r.sim.set_paper(Paper::Out);
    let err = r.printer.print(&ticket("SN0003")).await.unwrap_err();
    assert!(
        matches!(
            err,
            PrinterError::NotReady {
                problem: "out of paper",
                ..
            }
        ),
        "{err}"
    );
    assert!(r.sim.tickets().is_empty());
}

#[tokio::test]
async fn paper_running_out_mid_job_fails_that_ticket_only() {
    let mut r = rig();
    r.sim.set_paper_left(Some(1));
    r.printer.print(&ticket("SN0004")).await.unwrap();
    let err = r.printer.print(&ticket("SN0005")).await.unwrap_err();
    assert_failed_out_of_paper(&err);
    assert_eq!(r.sim.tickets().len(), 1);
    assert_eq!(r.sim.spoiled(), 1);
    // Paper reloaded: the failed ticket prints on the retry.
    r.sim.set_paper_left(None);
    r.sim.set_paper(Paper::Ok);
    r.printer.print(&ticket("SN0005")).await.unwrap();
    assert_eq!(r.sim.tickets()[1].qr, ["T1.SN0005"]);
}

#[tokio::test]
async fn cover_open_and_cutter_error_are_named() {
    let mut r = rig();
    r.sim.set_cover_open(true);
    let err = r.printer.print(&ticket("SN0006")).await.unwrap_err();
    assert_eq!(err.to_string(), "printer not ready: cover open");
    r.sim.set_cover_open(false);
    r.sim.set_cutter_error(true);
    let s = r.printer.status().await.unwrap();
    assert_eq!(s.problem(), Some("cutter error (paper jam?)"));
}

#[tokio::test]
async fn a_silent_printer_times_out_naming_the_port() {
    let mut r = rig();
    r.sim.set_silent(true);
    let err = r.printer.status().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PrinterError::NoAnswer { n: 1, .. }), "{text}");
    assert!(
        text.contains("printer: no answer to DLE EOT 1 within 300 ms"),
        "{text}"
    );
    r.sim.set_silent(false);
    assert!(r.printer.status().await.unwrap().ready());
}

#[tokio::test]
async fn an_unplugged_printer_is_reopened_when_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("printer");
    let pty = Pty::open_at(&link).unwrap();
    let mut printer = SerialPrinter::new(&link, 9600);
    printer.timeout = Duration::from_millis(300);
    let sim = SimPrinter::start(pty);
    printer.status().await.unwrap();

    drop(sim); // unplugged: the PTY and its name are gone
    let err = printer.status().await.unwrap_err();
    assert!(!matches!(err, PrinterError::NotReady { .. }), "{err}");
    let state = printer.watch_state().borrow().to_string();
    assert!(state.starts_with("reconnecting"), "{state}");

    let _sim = SimPrinter::start(Pty::open_at(&link).unwrap());
    assert!(printer.status().await.unwrap().ready());
    assert_eq!(printer.watch_state().borrow().to_string(), "connected");
}

/// The cut counter (GS g 2) is answered in buffer order: read right after a
/// ticket's bytes, it already counts that ticket's cut, even while the
/// ticket takes its time to print.
#[tokio::test]
async fn the_cut_counter_counts_each_ticket_once_the_printer_got_through_it() {
    let mut r = rig();
    r.printer.print_timeout = Duration::from_secs(5);
    let before = r
        .printer
        .cut_count()
        .await
        .unwrap()
        .expect("the simulator counts cuts");
    assert_eq!(before, r.sim.cuts());
    r.printer.print(&ticket("SN0301")).await.unwrap();
    assert_eq!(r.printer.cut_count().await.unwrap(), Some(before + 1));
    // A slow printer: the counter's answer waits for the ticket's cut.
    r.sim.set_print_time(Duration::from_millis(400));
    r.printer.print(&ticket("SN0302")).await.unwrap();
    assert_eq!(r.printer.cut_count().await.unwrap(), Some(before + 2));
    assert_eq!(r.sim.wait_for_tickets(2).await.len(), 2);
}

/// A ticket in the buffer when the power goes: no cut, the counter stays.
#[tokio::test]
async fn a_ticket_lost_in_a_power_cycle_leaves_the_counter_where_it_was() {
    let mut r = rig();
    r.printer.print_timeout = Duration::from_secs(5);
    let before = r.printer.cut_count().await.unwrap().unwrap();
    r.sim.set_print_time(Duration::from_secs(30));
    // The bytes arrive and their sender goes away, as a killed gated would.
    let mut port = std::fs::OpenOptions::new()
        .write(true)
        .open(r._dir.path().join("printer"))
        .unwrap();
    std::io::Write::write_all(&mut port, &ticket("SN0303")).unwrap();
    drop(port);
    tokio::time::timeout(Duration::from_secs(10), async {
        while !r.sim.printing() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the ticket under way");
    r.sim.power_cycle();
    assert_eq!(r.printer.cut_count().await.unwrap(), Some(before));
    assert!(r.sim.tickets().is_empty());
}

/// `GS g 2` is optional too: a printer without it gives no count, asked once
/// per connection.
#[tokio::test]
async fn a_printer_without_a_cut_counter_says_nothing_and_is_asked_once() {
    let mut r = rig();
    r.sim.set_counters(false);
    assert_eq!(r.printer.cut_count().await.unwrap(), None);
    r.sim.set_counters(true);
    assert_eq!(r.printer.cut_count().await.unwrap(), None, "remembered");
    r.printer.print(&ticket("SN0304")).await.unwrap();
    assert_eq!(r.sim.wait_for_tickets(1).await.len(), 1);
}
