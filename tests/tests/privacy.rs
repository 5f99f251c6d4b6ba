//! The privacy sweep: a kiosk sells a real-name ticket read from an ID card
//! and prints it, a visitor collects a web order by ID card, and a lane
//! admits a visitor by ID card on a real-name ticket it got through sync; then
//! everything the device wrote is searched for the visitors' ID numbers and
//! names in every encoding they travel in (UTF-8, GB18030, UCS-2 as the
//! reader sends them) and for the unmasked forms: the state directory's
//! files (the database with its WAL and free pages), gated's log, the
//! printer's output, the events uploaded to the central system and the
//! D-Bus signals the UI received. Zero hits is the pass.

use hal::gate::map::RegisterMap;
use hal::gate::sim::{GateKind, SimGate};
use hal::idcard::sim::{SimIdReader, test_cards};
use hal::pty::Pty;
use serde_json::json;
use tests::kiosk_device::{BOUND, Kiosk};
use tests::procs::{Gated, db_count, gatectl, wait_until};

/// Every form in which a card's number or name must not appear.
fn needles(id_number: &str, name: &str, english_name: &str) -> Vec<(String, Vec<u8>)> {
    let mut n = Vec::new();
    let utf16 = |s: &str| {
        s.encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect::<Vec<u8>>()
    };
    let gb = |s: &str| encoding_rs::GB18030.encode(s).0.into_owned();
    for (what, s) in [
        ("ID number", id_number.to_owned()),
        ("ID number, lower-case x", id_number.to_ascii_lowercase()),
        // What the masked form hides: the first 14 characters.
        ("ID number's masked part", id_number[..14].to_owned()),
        ("name", name.to_owned()),
        ("Latin name", english_name.to_owned()),
    ] {
        if s.is_empty() {
            continue;
        }
        n.push((format!("{what} (UTF-8)"), s.as_bytes().to_vec()));
        n.push((format!("{what} (UCS-2)"), utf16(&s)));
        n.push((format!("{what} (GB18030)"), gb(&s)));
    }
    n
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, recursively, with its bytes.
fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p.display().to_string(), b));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_device_writes_holds_an_id_number_or_a_name() {
    let mut k = Kiosk::start().await;
    let cards = test_cards();
    let (buyer, collector) = (cards[1].clone(), cards[0].clone());
    let mut seen: Vec<(String, Vec<u8>)> = Vec::new();
    let mut reads = k.signals("IdCardRead").await;

    // A real-name ticket sold at the kiosk from the ID card, paid, printed.
    let read = k.read_card(&mut reads, buyer.clone()).await;
    seen.push(("IdCardRead signal".into(), format!("{read:?}").into_bytes()));
    let handle = read.handle;
    k.id_reader.remove();
    k.sell_real_name(&handle).await;

    // A web order bound to another visitor's ID card, collected with the card.
    let web = k.web_order_synced(&collector.id_number).await;
    let read = k.read_card(&mut reads, collector.clone()).await;
    seen.push(("IdCardRead signal".into(), format!("{read:?}").into_bytes()));
    k.collect_by_id(&read.handle, &web).await;
    let printed = k.printer.wait_for_tickets(2).await;
    for t in &printed {
        seen.push(("printed ticket".into(), t.lines.join("\n").into_bytes()));
        seen.push(("printed QR".into(), t.qr.join("\n").into_bytes()));
    }
    // The sales reached the central system as events.
    wait_until("the outbox drained", BOUND, || {
        db_count(&k.state(), "SELECT COUNT(*) FROM outbox") == 0
    })
    .await;
    for e in k.central.events().await {
        seen.push(("uploaded event".into(), e.to_string().into_bytes()));
    }
    // A lane of the same site: a real-name ticket sold centrally reaches it
    // through the change feed; the visitor enters with the ID card.
    // A foreigner's card (2023): its own number and its Latin name too.
    let walker = cards[4].clone();
    let lane_dir = tempfile::tempdir().unwrap();
    let d = lane_dir.path();
    let lane_reader = SimIdReader::start(Pty::open_at(&d.join("id-reader")).unwrap());
    let gate = SimGate::new(GateKind::Turnstile, RegisterMap::load("lot").unwrap(), 1);
    gate.set_auto_walk(true);
    let (addr, _server) = gate
        .serve_tcp("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    std::fs::write(
        d.join("gated.toml"),
        format!(
            "role = \"lane\"\ndevice_id = \"lane-1\"\nstate_dir = \"{d}/state\"\n\
             [central]\nurl = \"{url}\"\nca_file = \"{ca}\"\nheartbeat_s = 1\n[peers]\nlisten = \"\"\n\
             [devices.id_readers.id]\nport = \"{d}/id-reader\"\n\
             [devices.gates.g]\nmodbus = \"tcp://{addr}\"\npoll_ms = 10\n\
             [lanes.east-1]\ndirection = \"entry\"\ngroup = \"east\"\ngate = \"g\"\nid_reader = \"id\"\n",
            d = d.display(),
            url = k.central.at.api,
            ca = k.central.at.ca_file.display(),
        ),
    )
    .unwrap();
    let code = k.central.pairing_code("lane-1", "lane", 600).await;
    let cfg = d.join("gated.toml").display().to_string();
    let (rc, out, err) = gatectl(&["provision", "--code", &code, "-c", &cfg]).await;
    assert_eq!(rc, 0, "{out}{err}");
    let mut lane = Gated::start(&d.join("gated.toml"));
    lane.wait_for(&["gated ready"]).await;
    let sold = k
        .central
        .admin(
            "/sim/sell",
            json!({ "id_number": walker.id_number, "product_id": 3 }),
        )
        .await;
    let id = sold["ticket_id"].as_i64().unwrap();
    let lane_state = d.join("state");
    wait_until("the real-name ticket at the lane", BOUND, || {
        db_count(
            &lane_state,
            &format!("SELECT COUNT(*) FROM tickets WHERE id = {id}"),
        ) == 1
    })
    .await;
    lane_reader.present(walker.clone());
    let admitted = lane.wait_for(&["admitted"]).await;
    assert!(admitted.contains(&format!("ticket={id}")), "{admitted}");
    wait_until("the passage uploaded", BOUND, || {
        db_count(&lane_state, "SELECT COUNT(*) FROM outbox") == 0
    })
    .await;
    seen.extend(files(&lane_state));
    let lane_log = lane.kill_and_drain().await;
    seen.push(("the lane's log".into(), lane_log.join("\n").into_bytes()));
    seen.extend(files(&lane_state));
    for e in k.central.events().await {
        seen.push(("uploaded event".into(), e.to_string().into_bytes()));
    }

    // The files while gated runs (WAL and all), then its log and the files
    // once it is gone.
    seen.extend(files(&k.state()));
    let log = k.gated.take().unwrap().kill_and_drain().await;
    seen.push(("gated's log".into(), log.join("\n").into_bytes()));
    seen.extend(files(&k.state()));

    let mut hits = Vec::new();
    for card in [&buyer, &collector, &walker] {
        for (what, needle) in needles(&card.id_number, &card.name, &card.english_name) {
            for (place, hay) in &seen {
                if find(hay, &needle) {
                    hits.push(format!("{what} of {} in {place}", &card.id_number[14..]));
                }
            }
        }
    }
    // The sweep looked at something, and finds what is there: the masked
    // number's last four characters are in the signal the UI got.
    assert!(seen.iter().filter(|(p, _)| p.ends_with("gated.db")).count() >= 4);
    assert!(
        seen.iter().any(
            |(p, hay)| p == "IdCardRead signal" && find(hay, &buyer.id_number.as_bytes()[14..])
        )
    );
    assert!(printed.len() == 2 && !log.is_empty());
    assert!(
        hits.is_empty(),
        "{} hit(s):\n{}",
        hits.len(),
        hits.join("\n")
    );
}
