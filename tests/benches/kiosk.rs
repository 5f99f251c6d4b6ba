//! Kiosk benchmarks through the D-Bus API, with the release binaries: round
//! trips of `Kiosk1.Catalog` and `Kiosk1.CreateOrder` (each asks
//! central-sim over TLS), and "paid" → the printer simulator's last byte of
//! a 4-ticket order.
//!
//! `cargo build --release --workspace --features hal/sim && cargo bench -p tests --bench kiosk`

use std::time::Instant;

use tests::kiosk_device::{Kiosk, today};
use tests::latency::report;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let k = Kiosk::start().await;

    let mut catalog = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        k.call_json("Catalog", &("",)).await.unwrap();
        catalog.push(t.elapsed());
    }
    report(
        "Kiosk1.Catalog round trip (central availability over TLS included)",
        catalog,
    );

    let mut create = Vec::new();
    for _ in 0..150 {
        let t = Instant::now();
        k.call_json(
            "CreateOrder",
            &(today(), vec![(1u32, 0u16, 1u16)], Vec::<String>::new(), ""),
        )
        .await
        .unwrap();
        create.push(t.elapsed());
    }
    report(
        "Kiosk1.CreateOrder round trip (central order over TLS included)",
        create,
    );

    let mut print = Vec::new();
    for i in 0..10 {
        let order = k.order(1, 4, &[], "").await;
        let no = order["order_no"].as_str().unwrap().to_owned();
        let status = k
            .pay_code(&no, &format!("2876543210{:06}", i + 1))
            .await
            .unwrap();
        assert_eq!(status, "paid");
        // From the answer "paid" to the last ticket's cut at the printer.
        let before = k.printer.tickets().len();
        let t = Instant::now();
        assert_eq!(k.print(&no).await.unwrap(), 4);
        k.printer.wait_for_tickets(before + 4).await;
        print.push(t.elapsed());
    }
    report(
        "paid → last byte of a 4-ticket order at the printer (9600 baud PTY)",
        print,
    );
}
