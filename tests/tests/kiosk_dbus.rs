//! The kiosk role through its D-Bus API, as the kiosk UI uses it: gated
//! (kiosk role) on a private dbus-daemon with the shipped bus policy,
//! central-sim over TLS, and the printer, scanner and ID-card reader
//! simulators on PTYs.

use futures_util::StreamExt;
use hal::idcard::sim::test_cards;
use serde_json::{Value, json};
use std::time::Duration;
use tests::kiosk_device::{BOUND, Kiosk, NAME, PATH, SERVICE_PIN, today, tomorrow};
use tests::procs::{CentralSim, db_count, gatectl_on_bus, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sale_with_qr_payment_prints_every_ticket_and_sold_out_and_expiry_are_named() {
    let k = Kiosk::start().await;

    let catalog = k.call_json("Catalog", &("",)).await.unwrap();
    assert_eq!(catalog["date"], today());
    assert_eq!(catalog["sale_available"], true);
    let adult = &catalog["products"][0];
    assert_eq!(adult["name_en"], "Adult day ticket");
    assert_eq!(adult["slots"][0]["remaining"], 200);
    assert!(catalog["scenic_area"].as_str().unwrap().contains("青山"));

    // Two adults, paid by the QR the kiosk shows.
    let order = k.order(1, 2, &[], "13800138000").await;
    let no = order["order_no"].as_str().unwrap().to_owned();
    assert_eq!(order["status"], "unpaid");
    assert_eq!(order["total_cents"], 24000);
    let m = k.call("Pay", &(no.as_str(), "qr", "")).await.unwrap();
    let (status, qr, expires): (String, String, i64) = m.body().deserialize().unwrap();
    assert_eq!(status, "unpaid");
    assert!(qr.contains(&no), "{qr}");
    assert!(expires > jiff::Timestamp::now().as_millisecond());
    let m = k.call("OrderStatus", &(no.as_str(),)).await.unwrap();
    assert_eq!(m.body().deserialize::<String>().unwrap(), "unpaid");
    // The visitor pays with a wallet app.
    k.central
        .admin(&format!("/sim/orders/{no}/paid"), json!({}))
        .await;
    let m = k.call("OrderStatus", &(no.as_str(),)).await.unwrap();
    assert_eq!(m.body().deserialize::<String>().unwrap(), "paid");
    assert_eq!(k.print(&no).await.unwrap(), 2);
    let printed = k.printer.wait_for_tickets(2).await;
    assert_eq!(printed.len(), 2);
    let text = printed[0].lines.join("\n");
    assert!(text.contains("青山景区"), "{text}");
    assert!(text.contains("成人票 Adult day ticket"), "{text}");
    assert!(text.contains(&no), "{text}");
    assert!(text.contains("￥120.00"), "{text}");
    assert!(text.contains("全天 All day"), "{text}");
    assert!(
        printed
            .iter()
            .all(|t| t.qr.len() == 1 && t.qr[0].starts_with("T1:"))
    );
    assert_ne!(printed[0].qr, printed[1].qr);
    // Printed once: a second print is refused (reprints are an engineer's).
    let e = k.print(&no).await.unwrap_err();
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.AlreadyPrinted");
    // The sale and both prints reach the central system.
    wait_until("sale and prints uploaded", BOUND, || {
        db_count(&k.state(), "SELECT COUNT(*) FROM outbox") == 0
    })
    .await;
    let kinds: Vec<String> = k
        .central
        .events()
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "sale").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "print").count(),
        2,
        "{kinds:?}"
    );

    // A jammed ticket: the engineer reprints it, with a reason, through gated.
    let first_id = db_count(
        &k.state(),
        &format!("SELECT MIN(ticket_id) FROM order_tickets WHERE order_no = '{no}'"),
    )
    .to_string();
    let (rc, out, err) = gatectl_on_bus(
        &k.bus.address,
        &["reprint", &first_id, "--reason", "paper jam at the cutter"],
    )
    .await;
    assert_eq!(rc, 0, "{out}{err}");
    assert_eq!(k.printer.wait_for_tickets(3).await.len(), 3);
    assert_eq!(
        db_count(
            &k.state(),
            "SELECT COUNT(*) FROM reprints WHERE reason = 'paper jam at the cutter'"
        ),
        1
    );
    let (rc, _, err) =
        gatectl_on_bus(&k.bus.address, &["reprint", "999999", "--reason", "test"]).await;
    assert_eq!(rc, 1);
    assert!(err.contains("NotFound"), "{err}");
    let (rc, out, _) = gatectl_on_bus(
        &k.bus.address,
        &["status", "-c", k.config().to_str().unwrap()],
    )
    .await;
    assert_eq!(rc, 0);
    assert!(
        out.lines()
            .any(|l| l.contains("devices") && l.contains("printer") && l.ends_with("ready")),
        "{out}"
    );

    // Mains lost: no new sale; back on mains, sale again.
    k.ups.set("ups.status", "OB");
    k.wait_for_sale(Some("power_fallback")).await;
    let e = k.order_refused(&today(), 1, 1).await;
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.NotAvailable");
    assert!(e.1.contains("mains power"), "{}", e.1);
    k.ups.set("ups.status", "OL");
    k.wait_for_sale(None).await;

    // The sale limits are gated's (gated.toml [kiosk]): the app reads them
    // and CreateOrder enforces them, the horizon too.
    assert_eq!(k.prop::<u32>("MaxQuantity").await, 12);
    assert_eq!(k.prop::<u32>("SaleHorizonDays").await, 10);
    let e = k.order_refused(&today(), 1, 13).await;
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.InvalidArgument");
    assert!(e.1.contains("1 to 12"), "{}", e.1);
    let day = |n: i64| (tests::central_sim::admin::today() + jiff::Span::new().days(n)).to_string();
    let e = k.order_refused(&day(-1), 1, 1).await;
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.InvalidArgument");
    assert!(e.1.contains("in the past"), "{}", e.1);
    let e = k.order_refused(&day(10), 1, 1).await;
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.InvalidArgument");
    assert!(e.1.contains("at most 10 days ahead"), "{}", e.1);
    let last_day = k
        .call_json(
            "CreateOrder",
            &(day(9), vec![(1u32, 0u16, 12u16)], Vec::<String>::new(), ""),
        )
        .await
        .expect("the horizon's last day, the most tickets");
    k.call("Cancel", &(last_day["order_no"].as_str().unwrap(),))
        .await
        .unwrap();
    let catalog = k.call_json("Catalog", &("",)).await.unwrap();
    let cards: Vec<(bool, u64)> = catalog["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["real_name"].as_bool().unwrap(),
                p["id_cards_per_ticket"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        cards.contains(&(true, 1)) && cards.contains(&(false, 0)),
        "{cards:?}"
    );

    // Sold out: one place left tomorrow, two asked.
    k.central
        .admin(
            "/sim/quota",
            json!({ "product_id": 1, "date": tomorrow(), "start_minute": 0, "capacity": 1 }),
        )
        .await;
    let e = k.order_refused(&tomorrow(), 1, 2).await;
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.SoldOut");
    assert!(e.1.contains("1 left"), "{}", e.1);

    // The payment window closes: paying is refused, the status says so.
    let order = k.order(1, 1, &[], "").await;
    let no = order["order_no"].as_str().unwrap().to_owned();
    k.central
        .admin(&format!("/sim/orders/{no}/expire"), json!({}))
        .await;
    let e = k.call("Pay", &(no.as_str(), "qr", "")).await.unwrap_err();
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.NotPayable");
    let m = k.call("OrderStatus", &(no.as_str(),)).await.unwrap();
    assert_eq!(m.body().deserialize::<String>().unwrap(), "expired");

    // A tour group: one ticket admitting five.
    let m = k
        .call("CreateGroupOrder", &(today(), 1u32, 0u16, 5u16, ""))
        .await
        .unwrap();
    let group = tests::kiosk_device::record_json(&m);
    assert_eq!(group["total_cents"], 60000);
    let gno = group["order_no"].as_str().unwrap().to_owned();
    assert_eq!(k.pay_code(&gno, "2876543210985555").await.unwrap(), "paid");
    assert_eq!(k.print(&gno).await.unwrap(), 1);
    let printed = k.printer.wait_for_tickets(4).await;
    let ticket = &printed[3];
    assert!(
        ticket
            .lines
            .iter()
            .any(|l| l.contains("团体票 Group ticket: 5 人 persons")),
        "{ticket:?}"
    );
    assert!(
        ticket.lines.iter().any(|l| l.contains("￥600.00")),
        "{ticket:?}"
    );
    let (payload, _, _) = gated::tickets::token::parse(&ticket.qr[0]).unwrap();
    assert_eq!(payload.group, Some(5));
    let e = k
        .call("CreateGroupOrder", &(today(), 3u32, 0u16, 2u16, ""))
        .await
        .unwrap_err();
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.InvalidArgument");

    // Arguments are checked, with a message a UI can show.
    let e = k.call_json("Catalog", &("tomorrow",)).await.unwrap_err();
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.InvalidArgument");
    assert!(e.1.contains("YYYY-MM-DD"), "{}", e.1);
    let e = k.order_refused(&today(), 3, 1).await;
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.InvalidArgument");
    assert!(e.1.contains("ID card"), "{}", e.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_by_scanned_code_then_out_of_paper_then_pickup_by_order_number_and_a_kill_loses_nothing()
 {
    let mut k = Kiosk::start().await;
    let mut scans = k.signals("CodeScanned").await;

    let order = k.order(1, 2, &[], "13912345678").await;
    let no = order["order_no"].as_str().unwrap().to_owned();
    // The visitor shows a payment code; the kiosk's scanner reads it.
    k.scanner.scan("2876543210987654").await.unwrap();
    let signal = tokio::time::timeout(BOUND, scans.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let code: String = signal.body().deserialize().unwrap();
    assert_eq!(code, "2876543210987654");
    // A declined code first, then a good one.
    let e = k.pay_code(&no, "2876543210980000").await.unwrap_err();
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.PaymentDeclined");
    assert_eq!(k.pay_code(&no, &code).await.unwrap(), "paid");

    // The roll ends after one ticket: the second stays printable.
    k.printer.set_paper_left(Some(1));
    let e = k.print(&no).await.unwrap_err();
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.PrinterOutOfPaper", "{e:?}");
    assert_eq!(k.printer.tickets().len(), 1);
    assert!(!k.prop::<bool>("SaleAvailable").await);
    let reasons: Vec<String> = k.prop("OutOfServiceReasons").await;
    assert_eq!(reasons, ["printer_out_of_paper"]);
    let e = k.order_refused(&today(), 1, 1).await;
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.PrinterOutOfPaper");

    // The engineer's self-test says what is wrong.
    let (rc, out, _) = gatectl_on_bus(&k.bus.address, &["test", "printer"]).await;
    assert_eq!(rc, 1);
    assert!(
        out.contains("FAIL") && out.contains("paper roll loaded"),
        "{out}"
    );

    // Paper in; the visitor comes back with the order number and phone.
    k.printer.set_paper_left(None);
    k.printer.set_paper(hal::printer::Paper::Ok);
    let found = k
        .call_json("Pickup", &("phone", no.as_str(), "5678"))
        .await
        .unwrap();
    assert_eq!(found[0]["order_no"], no.as_str());
    assert_eq!(found[0]["unprinted"], 1);
    assert_eq!(k.print(&no).await.unwrap(), 1);
    assert_eq!(k.printer.wait_for_tickets(2).await.len(), 2);
    let (rc, out, _) = gatectl_on_bus(&k.bus.address, &["test", "printer"]).await;
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("PASS  printed a test slip"), "{out}");
    let slips = k.printer.wait_for_tickets(3).await;
    assert!(
        slips[2]
            .lines
            .iter()
            .any(|l| l.contains("非门票 NOT A TICKET"))
            && slips[2].qr.is_empty()
    );
    let wrong = k
        .call_json("Pickup", &("phone", no.as_str(), "0000"))
        .await
        .unwrap();
    assert_eq!(wrong.as_array().unwrap().len(), 0);

    // Power cut between payment and print: nothing is lost.
    let order = k.order(1, 1, &[], "").await;
    let no2 = order["order_no"].as_str().unwrap().to_owned();
    let code2 = order["order_code"].as_str().unwrap().to_owned();
    assert_eq!(k.pay_code(&no2, "2876543210981111").await.unwrap(), "paid");
    k.gated.take().unwrap().kill().await;
    k.start_gated().await;
    let found = k
        .call_json("Pickup", &("order_code", code2.as_str(), ""))
        .await
        .unwrap();
    assert_eq!(found[0]["unprinted"], 1);
    assert_eq!(k.print(&no2).await.unwrap(), 1);
    assert_eq!(k.printer.wait_for_tickets(4).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickup_by_id_card_offline_and_query_of_a_used_and_a_valid_ticket() {
    let mut k = Kiosk::start().await;
    let card = test_cards()[0].clone();
    // Bought on the web shop, bound to the visitor's ID card.
    let no = k.web_order_synced(&card.id_number).await;

    // The central system goes away.
    let addr = k.central.api_addr();
    let central_dir = k.dir.path().join("central");
    k.central.kill().await;
    k.wait_for_sale(Some("offline")).await;

    // The visitor places the ID card: the UI gets a handle and masked fields only.
    let mut reads = k.signals("IdCardRead").await;
    k.id_reader.present(card.clone());
    let signal = tokio::time::timeout(BOUND, reads.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (handle, name, number, kind): (String, String, String, String) =
        signal.body().deserialize().unwrap();
    assert_eq!(name, "张*");
    assert_eq!(kind, "resident");
    assert!(number.ends_with(&card.id_number[14..]) && number.starts_with("**************"));
    assert!(!handle.contains(&card.id_number[..6]));
    k.collect_by_id(&handle, &no).await;
    let printed = k.printer.wait_for_tickets(1).await;
    assert!(printed[0].lines.join("\n").contains("实名票"));
    // Offline: no sale, pickup still worked.
    let e = k.order_refused(&today(), 1, 1).await;
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.Offline");

    // Back online; query a ticket used at a lane and one not used yet.
    k.central = CentralSim::start(&central_dir, &addr).await;
    let used = k.central.admin("/sim/sell", json!({})).await;
    let valid = k.central.admin("/sim/sell", json!({})).await;
    k.central
        .admin("/sim/passage", json!({ "ticket_id": used["ticket_id"] }))
        .await;
    k.wait_for_sale(None).await;
    let q = k
        .call_json("Query", &(used["token"].as_str().unwrap(),))
        .await
        .unwrap();
    assert_eq!(q["state"], "used", "{q}");
    assert_eq!(q["entries_used"], 1);
    assert_eq!(q["entries_left"], 0);
    let q = k
        .call_json("Query", &(valid["token"].as_str().unwrap(),))
        .await
        .unwrap();
    assert_eq!(q["state"], "valid", "{q}");
    assert_eq!(q["entries_left"], 1);
    assert_eq!(q["product_en"], "Adult day ticket");
    let e = k
        .call_json("Query", &("T1:NOT-A-TICKET",))
        .await
        .unwrap_err();
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.InvalidArgument");
}

/// What `busctl introspect` shows equals the XML kept in gated/dbus/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_introspection_matches_the_xml_in_the_repository_and_the_policy_denies_the_kiosk_user()
{
    let k = Kiosk::start().await;
    let reply = k
        .conn
        .call_method(
            Some(NAME),
            PATH,
            Some("org.freedesktop.DBus.Introspectable"),
            "Introspect",
            &(),
        )
        .await
        .unwrap();
    let xml: String = reply.body().deserialize().unwrap();
    let dir = tests::repo_root().join("gated/dbus");
    for iface in gated::dbus::INTERFACES {
        let start = xml
            .find(&format!("<interface name=\"{iface}\">"))
            .unwrap_or_else(|| panic!("{iface} not served"));
        let end = start + xml[start..].find("</interface>").unwrap() + "</interface>".len();
        let served = format!("{}\n", xml[start..end].trim());
        let file = dir.join(format!("{iface}.xml"));
        if std::env::var_os("UPDATE_DBUS_XML").is_some() {
            std::fs::write(&file, &served).unwrap();
        }
        let kept = std::fs::read_to_string(&file).unwrap_or_default();
        assert_eq!(
            served,
            kept,
            "{iface} differs from {}: update it (UPDATE_DBUS_XML=1) and review the change",
            file.display()
        );
    }

    // Provisioning again goes through the running gated, which reconnects.
    let mut k = k;
    let code = k.central.pairing_code("kiosk-1", "kiosk", 600).await;
    let cfg = k.config();
    let (rc, out, err) = gatectl_on_bus(
        &k.bus.address,
        &["provision", "--code", &code, "-c", cfg.to_str().unwrap()],
    )
    .await;
    assert_eq!(rc, 0, "{out}{err}");
    assert!(
        out.contains("Enrolled with") && out.contains("device id     kiosk-1"),
        "{out}"
    );
    let g = k.gated.as_mut().unwrap();
    g.wait_for(&["provisioning requested"]).await;
    g.wait_for(&["credentials changed: reconnecting"]).await;
    let (rc, _, err) = gatectl_on_bus(
        &k.bus.address,
        &["provision", "--code", &code, "-c", cfg.to_str().unwrap()],
    )
    .await;
    assert_eq!(rc, 1);
    assert!(
        err.contains("already used") && err.contains("new pairing code"),
        "{err}"
    );

    // The kiosk user (nobody here) may use Kiosk1 but not Engineer1.
    if !nix::unistd::geteuid().is_root() {
        eprintln!("policy check needs root (to call as another user): not run");
        return;
    }
    let as_kiosk = |member: &str, args: &[&str]| {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "dbus-send",
        ])
        .arg(format!("--bus={}", k.bus.address))
        .args(["--print-reply", &format!("--dest={NAME}"), PATH, member])
        .args(args);
        c.output().unwrap()
    };
    let out = as_kiosk(
        "cn.scenicpark.Gated.Engineer1.Reprint",
        &["uint64:1", "string:jammed"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("AccessDenied"), "{err}");
    let out = as_kiosk("cn.scenicpark.Gated.Kiosk1.Catalog", &["string:"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Adult day ticket"), "{stdout}");
    // Not even the Engineer1 methods its service menu offers: those are
    // Kiosk1's and need the session gated opens for the right PIN.
    for member in ["SyncNow", "SelfTest"] {
        let out = as_kiosk(&format!("cn.scenicpark.Gated.Engineer1.{member}"), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("AccessDenied"), "{member}: {err}");
    }
    let refused = |out: std::process::Output, name: &str| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success());
        assert!(
            err.contains(&format!("cn.scenicpark.Gated.Error.{name}")),
            "{err}"
        );
        err
    };
    refused(
        as_kiosk("cn.scenicpark.Gated.Kiosk1.ServiceSyncNow", &["string:"]),
        "NotAuthorized",
    );
    refused(
        as_kiosk(
            "cn.scenicpark.Gated.Kiosk1.ServiceTestPrint",
            &["string:0123456789abcdef0123456789abcdef"],
        ),
        "NotAuthorized",
    );
    let err = refused(
        as_kiosk(
            "cn.scenicpark.Gated.Kiosk1.OpenServiceSession",
            &["string:1111"],
        ),
        "WrongPin",
    );
    assert!(err.contains("4 attempts left"), "{err}");
    let out = as_kiosk(
        "cn.scenicpark.Gated.Kiosk1.OpenServiceSession",
        &[&format!("string:{SERVICE_PIN}")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = stdout
        .split('"')
        .nth(1)
        .expect("a token in the reply")
        .to_owned();
    let printed = k.printer.tickets().len();
    let out = as_kiosk(
        "cn.scenicpark.Gated.Kiosk1.ServiceTestPrint",
        &[&format!("string:{token}")],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("boolean true"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(k.printer.tickets().len(), printed + 1);
    let out = as_kiosk(
        "cn.scenicpark.Gated.Kiosk1.ServiceSyncNow",
        &[&format!("string:{token}")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    k.gated
        .as_mut()
        .unwrap()
        .wait_for(&["sync requested from the kiosk's service menu"])
        .await;
    // The session is the kiosk user's: another caller cannot borrow it.
    let out = std::process::Command::new("dbus-send")
        .arg(format!("--bus={}", k.bus.address))
        .args(["--print-reply", &format!("--dest={NAME}"), PATH])
        .arg("cn.scenicpark.Gated.Kiosk1.ServiceSyncNow")
        .arg(format!("string:{token}"))
        .output()
        .unwrap();
    refused(out, "NotAuthorized");
    // Five wrong PINs in a row: even the right one waits.
    for _ in 0..4 {
        refused(
            as_kiosk(
                "cn.scenicpark.Gated.Kiosk1.OpenServiceSession",
                &["string:0000"],
            ),
            "WrongPin",
        );
    }
    refused(
        as_kiosk(
            "cn.scenicpark.Gated.Kiosk1.OpenServiceSession",
            &["string:0000"],
        ),
        "Locked",
    );
    let err = refused(
        as_kiosk(
            "cn.scenicpark.Gated.Kiosk1.OpenServiceSession",
            &[&format!("string:{SERVICE_PIN}")],
        ),
        "Locked",
    );
    assert!(err.contains("try again in"), "{err}");
    // As the owner (root or gated-engineer), Engineer1 is reachable: a reprint of an unknown ticket is NotFound.
    let out = std::process::Command::new("dbus-send")
        .arg(format!("--bus={}", k.bus.address))
        .args([
            "--print-reply",
            &format!("--dest={NAME}"),
            PATH,
            "cn.scenicpark.Gated.Engineer1.Reprint",
            "uint64:1",
            "string:jammed",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cn.scenicpark.Gated.Error.NotFound"), "{err}");
}

/// LB/T 034-2014: at the tier the site chose, ticket sales for today stop;
/// later dates still sell. The visitors were counted at another device and
/// reached the kiosk through the change feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_tier_that_stops_sales_today_is_sold_out_and_later_dates_still_sell() {
    let k = Kiosk::start_with("[occupancy]\ndaily_capacity = 10\nstop_sales_at = 90\n").await;
    let order = |date: String| {
        let k = &k;
        async move {
            k.call_json(
                "CreateOrder",
                &(date, vec![(1u32, 0u16, 1u16)], Vec::<String>::new(), ""),
            )
            .await
        }
    };
    let o = order(today()).await.expect("below the tier, today sells");
    k.call("Cancel", &(o["order_no"].as_str().unwrap(),))
        .await
        .unwrap();
    let notice = || async { k.prop::<(String, String)>("VisitorNotice").await };
    assert_eq!(notice().await, (String::new(), String::new()), "below 80 %");
    // Eight visitors in at a lane of the site: the first tier, a notice,
    // and today still sells.
    k.central
        .admin("/sim/passage", json!({ "ticket_id": 1, "persons": 8 }))
        .await;
    let deadline = tokio::time::Instant::now() + BOUND;
    while notice().await.1 != "The park is busy: please plan your visit" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            notice().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(notice().await.0, "景区游客较多，请错峰游览");
    let o = order(today()).await.expect("at 80 %, today still sells");
    k.call("Cancel", &(o["order_no"].as_str().unwrap(),))
        .await
        .unwrap();
    // One more: 90 % of the day's capacity stops today's sales.
    k.central
        .admin("/sim/passage", json!({ "ticket_id": 2, "persons": 1 }))
        .await;
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let (_, out, _) = gatectl_on_bus(
            &k.bus.address,
            &["--json", "capacity", "-c", k.config().to_str().unwrap()],
        )
        .await;
        let o: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        if o["sales_stopped"] == true {
            assert_eq!(
                (o["site"]["entries"].as_u64(), o["site"]["tier"].as_u64()),
                (Some(9), Some(90))
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sales never stopped: {o:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = k.order_refused(&today(), 1, 1).await;
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.SoldOut");
    assert!(e.1.contains("later dates still sell"), "{}", e.1);
    order(tomorrow()).await.expect("tomorrow still sells");
    assert_eq!(
        notice().await.1,
        "The park is very busy: no more tickets for today"
    );
    // The site's figures as Device1 properties.
    let device = gated_api::DEVICE1;
    assert_eq!(k.prop_of::<u64>(device, "VisitorsInside").await, 9);
    assert_eq!(k.prop_of::<u64>(device, "EntriesToday").await, 9);
    assert_eq!(k.prop_of::<u8>(device, "CapacityTierReached").await, 90);
    // The heartbeat tells the central system what this device counts.
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let stats = k.central.stats().await;
        let reported = stats
            .heartbeats
            .iter()
            .find(|h| h.device_id == "kiosk-1")
            .and_then(|h| h.occupancy.clone());
        if let Some(o) = reported.filter(|o| o.entries == 9) {
            assert_eq!((o.inside, o.tier, o.isolated), (9, 90, false));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no occupancy in the heartbeat"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GS r` is optional in ESC/POS: with a printer that ignores it, a kiosk
/// order prints every ticket once and records each as printed, and the
/// engineer's test print says how prints are confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printer_that_ignores_gs_r_prints_every_ticket_once() {
    let mut k = Kiosk::start().await;
    k.printer.set_gs_r(false);
    // The printer may be another after a restart: gated asks again.
    k.gated.take().unwrap().kill().await;
    k.start_gated().await;
    let order = k.order(1, 2, &[], "").await;
    let no = order["order_no"].as_str().unwrap().to_owned();
    assert_eq!(k.pay_code(&no, "2876543210981111").await.unwrap(), "paid");
    assert_eq!(k.print(&no).await.unwrap(), 2);
    let printed = k.printer.tickets();
    assert_eq!(printed.len(), 2, "each ticket once");
    assert_ne!(printed[0].qr, printed[1].qr);
    let q = format!(
        "SELECT COUNT(*) FROM order_tickets WHERE order_no = '{no}' AND printed_ms IS NOT NULL"
    );
    assert_eq!(db_count(&k.state(), &q), 2);
    let (rc, out, err) = gatectl_on_bus(&k.bus.address, &["test", "printer"]).await;
    assert_eq!(rc, 0, "{out}{err}");
    assert!(
        out.contains("status after the estimated print time"),
        "{out}"
    );
}

/// The kiosk sells to and hands over to holders of every card kind: a
/// real-name ticket sold on a 2017 foreigner's card, a web order collected
/// with a Hong Kong/Macao/Taiwan residence permit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreigners_and_permit_holders_buy_and_collect_with_their_cards() {
    let k = Kiosk::start().await;
    let cards = test_cards();
    let (foreigner, permit) = (cards[3].clone(), cards[5].clone());
    let mut reads = k.signals("IdCardRead").await;

    let read = k.read_card(&mut reads, foreigner.clone()).await;
    let handle = read.handle;
    assert_eq!(read.name, "马*");
    assert_eq!(read.kind, "foreigner-2017");
    assert_eq!(
        read.number,
        format!("***********{}", &foreigner.id_number[11..])
    );
    k.id_reader.remove();
    k.sell_real_name(&handle).await;

    let web = k.web_order_synced(&permit.id_number).await;
    let read = k.read_card(&mut reads, permit.clone()).await;
    let handle = read.handle;
    assert_eq!(read.name, "陈**");
    assert_eq!(read.kind, "hk-macao-taiwan");
    k.collect_by_id(&handle, &web).await;
    assert_eq!(k.printer.wait_for_tickets(2).await.len(), 2);
}

/// SIGKILLs gated once the printer is in the middle of one of `order_no`'s
/// tickets (its bytes in, its cut pending), then reaps it.
async fn kill_mid_print(k: &mut Kiosk, order_no: &str) {
    let pid = k.gated.as_ref().unwrap().child.id().unwrap();
    {
        let body = (order_no,);
        let call = k.conn.call_method(
            Some(NAME),
            PATH,
            Some("cn.scenicpark.Gated.Kiosk1"),
            "Print",
            &body,
        );
        tokio::pin!(call);
        let printing = async {
            while !k.printer.printing() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            r = &mut call => panic!("the print ended before the kill: {:?}", r.map(|_| ())),
            _ = tokio::time::timeout(BOUND, printing) => {}
        }
        assert!(k.printer.printing(), "no ticket under way within {BOUND:?}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        assert!(call.await.is_err(), "gated was killed mid-print");
    }
    k.gated.take().unwrap().kill().await;
}

/// A paid order of `qty` adult tickets.
async fn paid(k: &Kiosk, qty: u16) -> String {
    let order = k.order(1, qty, &[], "").await;
    let no = order["order_no"].as_str().unwrap().to_owned();
    assert_eq!(k.pay_code(&no, "2876543210981111").await.unwrap(), "paid");
    no
}

fn printed_of(k: &Kiosk, order_no: &str) -> i64 {
    db_count(
        &k.state(),
        &format!(
            "SELECT COUNT(*) FROM order_tickets WHERE order_no = '{order_no}' AND printed_ms IS NOT NULL"
        ),
    )
}

/// Tickets a kill left held mid-print are settled at the next start by the
/// printer's cut counter (GS g 2): one that came out is recorded as printed,
/// one the printer lost prints again, and none comes out twice. A printer
/// without a counter leaves the ticket held for an engineer, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_print_is_settled_by_the_printers_cut_counter() {
    let mut k = Kiosk::start().await;
    k.printer.set_print_time(Duration::from_millis(700));
    // The first ticket of two comes out after the kill.
    let no = paid(&k, 2).await;
    kill_mid_print(&mut k, &no).await;
    assert_eq!(k.printer.wait_for_tickets(1).await.len(), 1);
    k.start_gated().await;
    wait_until("the held ticket recorded as printed", BOUND, || {
        printed_of(&k, &no) == 1
    })
    .await;
    assert_eq!(k.print(&no).await.unwrap(), 1, "only the other ticket");
    let tickets = k.printer.wait_for_tickets(2).await;
    assert_ne!(tickets[0].qr, tickets[1].qr, "two tickets, not one twice");

    // The printer loses the ticket (power cycle): it prints again.
    let no = paid(&k, 1).await;
    kill_mid_print(&mut k, &no).await;
    k.printer.power_cycle();
    k.start_gated().await;
    wait_until("the held ticket printable again", BOUND, || {
        db_count(
            &k.state(),
            &format!(
                "SELECT COUNT(*) FROM order_tickets WHERE order_no = '{no}' AND print_started_ms IS NULL"
            ),
        ) == 1
    })
    .await;
    assert_eq!(k.print(&no).await.unwrap(), 1);
    assert_eq!(k.printer.wait_for_tickets(3).await.len(), 3);
    assert_eq!(printed_of(&k, &no), 1);

    // No counter: held for an engineer, whether it came out or not.
    k.printer.set_counters(false);
    k.gated.take().unwrap().stop().await;
    k.start_gated().await;
    let no = paid(&k, 1).await;
    kill_mid_print(&mut k, &no).await;
    assert_eq!(k.printer.wait_for_tickets(4).await.len(), 4);
    let mut g = tests::procs::Gated::start_on_bus(&k.config(), &k.bus.address);
    g.wait_for_all(&[
        &["held mid-print", "no cut count recorded"],
        &["D-Bus API served"],
    ])
    .await;
    k.gated = Some(g);
    k.wait_for_sale(None).await;
    let e = k.print(&no).await.unwrap_err();
    assert_eq!(e.0, "cn.scenicpark.Gated.Error.AlreadyPrinted", "{e:?}");
    assert_eq!(k.printer.tickets().len(), 4, "nothing printed twice");
}
