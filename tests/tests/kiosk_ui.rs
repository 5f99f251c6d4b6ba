//! The kiosk app's flows, tapped through like a visitor would, against a
//! running gated (kiosk role), central-sim and the device simulators on a
//! private dbus-daemon. What is asserted is what the visitor sees and what
//! the printer simulator printed.

use std::time::Duration;

use hal::idcard::sim::test_cards;
use kiosk::{PayNote, Problem, Reason, Screen};
use serde_json::json;
use slint::Model;
use tests::kiosk_device::tomorrow;
use tests::kiosk_screen::{PIN, Screens};

#[test]
fn buy_two_adults_and_a_child_paid_by_qr_prints_three_tickets_then_one_is_checked() {
    let s = Screens::start();
    assert_eq!(s.screen(), Screen::Home);
    s.tap("Buy tickets");
    s.wait_screen(Screen::Buy);
    assert!(!s.enabled("Next"), "nothing chosen yet");
    s.add("Adult day ticket", "", 2);
    s.add("Child ticket", "08:00–12:00", 1);
    assert_eq!(s.g().get_total(), "¥300.00");
    assert_eq!(s.g().get_ticket_count(), 3);
    s.tap("Next");
    s.wait_screen(Screen::Confirm);
    let lines: Vec<(String, i32)> = s
        .g()
        .get_lines()
        .iter()
        .map(|l| (l.name_en.to_string(), l.quantity))
        .collect();
    assert_eq!(
        lines,
        [("Adult day ticket".into(), 2), ("Child ticket".into(), 1)]
    );
    s.type_digits("13800138000");
    assert_eq!(s.g().get_phone(), "13800138000");
    s.tap("Pay");
    s.wait_screen(Screen::Pay);
    let no = s.g().get_order_no().to_string();
    assert!(no.starts_with('O'), "{no}");
    let qr = s.g().get_qr().size();
    assert!(qr.width >= 300 && qr.width == qr.height, "QR {qr:?}");
    assert!(s.g().get_seconds_left() > 60);

    // The visitor pays with a wallet app; the next poll sees it.
    let pending = s.block_on(s.k.central.orders());
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["order_no"], no.as_str());
    assert_eq!(pending[0]["status"], "unpaid", "{pending:?}");
    s.block_on(
        s.k.central
            .admin(&format!("/sim/orders/{no}/paid"), json!({})),
    );
    s.advance(Duration::from_secs(2));
    s.wait_screen(Screen::Done);
    let paid = s.block_on(s.k.central.orders());
    assert_eq!(
        (paid[0]["status"].as_str(), paid[0]["tickets"].as_u64()),
        (Some("paid"), Some(3)),
        "{paid:?}"
    );
    assert_eq!(s.g().get_printed(), 3);
    assert_eq!(s.g().get_print_total(), 3);
    let tickets = s.block_on(s.k.printer.wait_for_tickets(3));
    let text: Vec<String> = tickets.iter().map(|t| t.lines.join("\n")).collect();
    assert_eq!(text.iter().filter(|t| t.contains("成人票")).count(), 2);
    assert_eq!(text.iter().filter(|t| t.contains("儿童票")).count(), 1);
    s.tap("Done");
    s.wait_screen(Screen::Home);

    // One of the printed tickets, checked at the kiosk.
    s.tap("Check a ticket");
    s.wait_screen(Screen::Check);
    s.block_on(s.k.scanner.scan(&tickets[0].qr[0])).unwrap();
    s.wait_screen(Screen::CheckResult);
    let t = s.g().get_ticket();
    assert_eq!(t.state, "valid");
    assert_eq!(t.product_en, "Adult day ticket");
    assert_eq!(t.entries_allowed, 1);
    // Not a ticket: told so, with a way back.
    s.tap("Check another");
    s.wait_screen(Screen::Check);
    s.block_on(s.k.scanner.scan("HELLO-NOT-A-TICKET")).unwrap();
    s.wait_problem(Problem::NotATicket);
    s.tap("Scan another");
    s.wait_screen(Screen::Check);

    // The visitor switches to Chinese: the screens follow.
    s.tap("Back");
    s.wait_screen(Screen::Home);
    s.tap("简体中文");
    assert_eq!(s.g().get_lang(), "zh");
    s.tap("购票");
    s.wait_screen(Screen::Buy);
}

#[test]
fn real_name_purchase_with_two_id_cards_paid_by_code_then_collect_by_id_card() {
    let s = Screens::start();
    let cards = test_cards();
    s.tap("Buy tickets");
    s.wait_screen(Screen::Buy);
    s.add("Real-name ticket", "", 2);
    s.tap("Next");
    s.wait_screen(Screen::IdCards);
    assert_eq!(s.g().get_id_needed(), 2);
    assert!(!s.enabled("Next"));
    // A resident and a 2023 foreigner's card: each named by its kind.
    for (i, card) in [&cards[0], &cards[4]].into_iter().enumerate() {
        s.k.id_reader.present(card.clone());
        s.wait(&format!("ID card {}", i + 1), |s| {
            s.g().get_id_cards().row_count() == i + 1
        });
        s.k.id_reader.remove();
    }
    // Masked, never the number.
    let shown = s.g().get_id_cards();
    let first = shown.row_data(0).unwrap();
    assert_eq!(first.name, "张*");
    assert!(first.number.starts_with("**************"));
    assert!(!first.number.contains(&cards[0].id_number[..6]));
    assert_eq!(first.kind, "resident");
    assert!(s.shows("Resident ID card"));
    let second = shown.row_data(1).unwrap();
    assert_eq!(second.kind, "foreigner-2023");
    assert!(s.shows("Foreigner's permanent residence ID card"));
    s.tap("Next");
    s.wait_screen(Screen::Confirm);
    s.tap("Pay");
    s.wait_screen(Screen::Pay);

    // A declined payment code, then a good one, shown to the scanner.
    s.block_on(s.k.scanner.scan("2876543210980000")).unwrap();
    s.wait("the declined payment", |s| {
        s.g().get_pay_note() == PayNote::Declined && !s.g().get_busy()
    });
    assert_eq!(s.screen(), Screen::Pay);
    s.block_on(s.k.scanner.scan("2876543210987654")).unwrap();
    s.wait_screen(Screen::Done);
    assert!(s.g().get_take_id_card());
    let printed = s.block_on(s.k.printer.wait_for_tickets(2));
    assert!(
        printed
            .iter()
            .all(|t| t.lines.join("\n").contains("实名票"))
    );
    s.tap("Done");
    s.wait_screen(Screen::Home);

    // A web-shop order bound to a third card, collected with that card.
    let online = s.block_on(s.k.central.admin(
        "/sim/online-order",
        json!({ "product_id": 3, "id_numbers": [cards[2].id_number] }),
    ));
    let no = online["order_no"].as_str().unwrap().to_owned();
    s.tap("Collect tickets");
    s.wait_screen(Screen::Collect);
    s.k.id_reader.present(cards[2].clone());
    s.wait_screen(Screen::CollectFound);
    let found = s.g().get_found();
    assert_eq!(found.row_count(), 1);
    assert_eq!(found.row_data(0).unwrap().order_no, no.as_str());
    assert_eq!(s.g().get_ticket_count(), 1);
    s.tap("Print");
    s.wait_screen(Screen::Done);
    assert_eq!(s.block_on(s.k.printer.wait_for_tickets(3)).len(), 3);
}

#[test]
fn collect_by_order_qr_out_of_paper_after_payment_collect_by_number_then_mains_fails() {
    let s = Screens::start();
    // A web-shop order: its QR code from the confirmation message.
    let online = s.block_on(s.k.central.admin(
        "/sim/online-order",
        json!({ "product_id": 1, "quantity": 2 }),
    ));
    let code = online["order_code"].as_str().unwrap().to_owned();
    s.tap("Collect tickets");
    s.wait_screen(Screen::Collect);
    s.block_on(s.k.scanner.scan(&code)).unwrap();
    s.wait_screen(Screen::CollectFound);
    assert_eq!(s.g().get_ticket_count(), 2);
    s.tap("Print");
    s.wait_screen(Screen::Done);
    assert_eq!(s.block_on(s.k.printer.wait_for_tickets(2)).len(), 2);
    s.tap("Done");
    s.wait_screen(Screen::Home);

    // A sale whose printer runs out after the first of two tickets.
    s.tap("Buy tickets");
    s.wait_screen(Screen::Buy);
    s.add("Adult day ticket", "", 2);
    s.tap("Next");
    s.wait_screen(Screen::Confirm);
    s.type_digits("13912345678");
    s.tap("Pay");
    s.wait_screen(Screen::Pay);
    let no = s.g().get_order_no().to_string();
    s.k.printer.set_paper_left(Some(1));
    s.block_on(s.k.scanner.scan("2876543210987654")).unwrap();
    s.wait_problem(Problem::PrinterAfterPayment);
    // The visitor is shown the order number to collect the rest with.
    assert_eq!(s.g().get_order_no(), no.as_str());
    assert_eq!(s.block_on(s.k.printer.wait_for_tickets(3)).len(), 3);
    s.tap("Home");
    s.wait_screen(Screen::Home);
    s.wait("the home screen to say the paper is out", |s| {
        !s.g().get_can_sell() && !s.g().get_can_collect() && s.g().get_can_check()
    });
    assert!(!s.enabled("Buy tickets"));
    assert!(!s.enabled("Collect tickets"));

    // Paper in; the visitor comes back with the order number and phone.
    s.k.printer.set_paper_left(None);
    s.k.printer.set_paper(hal::printer::Paper::Ok);
    s.wait("sales to resume", |s| s.g().get_can_sell());
    s.tap("Collect tickets");
    s.wait_screen(Screen::Collect);
    s.tap("Type the order number");
    s.wait_screen(Screen::CollectNumber);
    s.type_digits(&no[1..]);
    s.tap("Last 4 digits of your phone number");
    s.type_digits("0000");
    s.tap("Find my tickets");
    s.wait_problem(Problem::NotFound);
    s.tap("Try again");
    s.wait_screen(Screen::Collect);
    s.tap("Type the order number");
    s.type_digits(&no[1..]);
    s.tap("Last 4 digits of your phone number");
    s.type_digits("5678");
    s.tap("Find my tickets");
    s.wait_screen(Screen::CollectFound);
    assert_eq!(s.g().get_ticket_count(), 1, "one of two is still to print");
    s.tap("Print");
    s.wait_screen(Screen::Done);
    assert_eq!(s.block_on(s.k.printer.wait_for_tickets(4)).len(), 4);
    s.tap("Done");
    s.wait_screen(Screen::Home);

    // Mains fails (gated's power fallback): the home screen says so at once,
    // without a tap, and the kiosk neither sells nor prints.
    s.k.ups.set("ups.status", "OB DISCHRG");
    s.wait("the home screen to name the power failure", |s| {
        s.g().get_reasons().iter().collect::<Vec<_>>() == [Reason::Power]
    });
    assert!(!s.enabled("Buy tickets"));
    assert!(!s.enabled("Collect tickets"));
    assert!(s.enabled("Check a ticket"));
    s.k.ups.set("ups.status", "OL");
    s.wait("sales to resume on mains", |s| {
        s.g().get_can_sell() && s.g().get_reasons().row_count() == 0
    });
}

#[test]
fn sold_out_payment_expired_inactivity_and_the_service_menu() {
    let s = Screens::start();
    // One place left tomorrow, two asked.
    s.block_on(s.k.central.admin(
        "/sim/quota",
        json!({ "product_id": 1, "date": tomorrow(), "start_minute": 0, "capacity": 1 }),
    ));
    s.tap("Buy tickets");
    s.wait_screen(Screen::Buy);
    // gated's limits (12 per line, 10 days on sale here), not the app's own.
    let rows = s.rows();
    let adult_today = rows.iter().find(|r| r.0 == "Adult day ticket");
    assert_eq!(adult_today.map(|r| r.3), Some(12), "{rows:?}");
    let days: usize = s.g().get_weeks().iter().map(|w| w.days.row_count()).sum();
    assert_eq!(days, 10);
    s.add("Adult day ticket", "", 2);
    s.tap("Tomorrow");
    s.wait_screen(Screen::Buy);
    assert_eq!(s.g().get_chosen_date().iso, tomorrow().as_str());
    // A new date starts a new choice, with what is left there.
    assert_eq!(s.g().get_ticket_count(), 0);
    let adult = |s: &Screens| {
        s.rows()
            .into_iter()
            .find(|r| r.0 == "Adult day ticket")
            .unwrap()
    };
    assert_eq!(adult(&s).3, 1, "at most the one place left");
    // Someone else buys the last place meanwhile.
    s.add("Adult day ticket", "", 1);
    s.block_on(s.k.central.admin(
        "/sim/quota",
        json!({ "product_id": 1, "date": tomorrow(), "start_minute": 0, "capacity": 0 }),
    ));
    s.tap("Next");
    s.wait_screen(Screen::Confirm);
    s.tap("Pay");
    s.wait_problem(Problem::SoldOut);
    s.tap("Choose again");
    s.wait_screen(Screen::Buy);
    assert_eq!(adult(&s).3, 0);

    // The payment window closes at the central system.
    s.tap("Today");
    s.wait_screen(Screen::Buy);
    s.add("Adult day ticket", "", 1);
    let no = s.checkout();
    s.block_on(
        s.k.central
            .admin(&format!("/sim/orders/{no}/expire"), json!({})),
    );
    s.advance(Duration::from_secs(2));
    s.wait_problem(Problem::PaymentExpired);
    s.tap("Start again");
    s.wait_screen(Screen::Buy);

    // Inactivity: a half-made choice goes home.
    s.add("Adult day ticket", "", 1);
    s.advance(Duration::from_secs(61));
    s.wait_screen(Screen::Home);

    // Never while paying; a visitor who walked away frees the kiosk after
    // pay_timeout_s, and the unpaid order is cancelled.
    s.tap("Buy tickets");
    s.wait_screen(Screen::Buy);
    s.add("Adult day ticket", "", 1);
    s.tap("Next");
    s.wait_screen(Screen::Confirm);
    s.tap("Pay");
    s.wait_screen(Screen::Pay);
    let no = s.g().get_order_no().to_string();
    s.advance(Duration::from_secs(61));
    s.app.pump();
    assert_eq!(s.screen(), Screen::Pay);
    s.advance(Duration::from_secs(120));
    s.wait_problem(Problem::PaymentExpired);
    let status = s
        .block_on(s.k.call("OrderStatus", &(no.as_str(),)))
        .unwrap();
    assert_eq!(status.body().deserialize::<String>().unwrap(), "cancelled");
    s.advance(Duration::from_secs(61));
    s.wait_screen(Screen::Home);

    // The service menu: five taps on the picture, then the PIN.
    s.tap("service");
    s.wait_screen(Screen::ServicePin);
    s.type_digits("1111");
    s.tap("Enter");
    // gated checks it, and says how many tries are left.
    s.wait("the wrong PIN refused", |s| {
        s.g().get_pin_wrong() && !s.g().get_busy()
    });
    assert_eq!(s.screen(), Screen::ServicePin);
    assert!(
        s.g().get_service_report().contains("4 attempts left"),
        "{}",
        s.g().get_service_report()
    );
    s.type_digits(PIN);
    assert_eq!(s.g().get_pin(), "●●●●", "the PIN is not shown");
    s.tap("Enter");
    s.wait_screen(Screen::Service);
    s.wait("the device facts", |s| s.g().get_facts().row_count() > 5);
    let facts: Vec<(String, String)> = s
        .g()
        .get_facts()
        .iter()
        .map(|f| (f.key.to_string(), f.value.to_string()))
        .collect();
    assert!(
        facts.contains(&("device".into(), "kiosk-1".into())),
        "{facts:?}"
    );
    assert!(
        facts.contains(&("central link".into(), "online".into())),
        "{facts:?}"
    );
    let before = s.k.printer.tickets().len();
    s.tap("Test print");
    s.wait("the test print's report", |s| {
        s.g().get_service_report().starts_with("PASS")
    });
    assert_eq!(s.k.printer.tickets().len(), before + 1);
    s.tap("Sync now");
    s.wait("the sync report", |s| {
        s.g().get_service_report().contains("sync requested")
    });
    s.tap("Exit");
    s.wait_screen(Screen::Home);
}

#[test]
fn a_busy_park_is_told_on_the_home_screen_and_stops_today_s_sales_not_tomorrow_s() {
    // The site shows its visitors on the kiosk's home screen.
    let s = Screens::start_with_config(
        "[occupancy]\ndaily_capacity = 10\ninstant_capacity = 20\nstop_sales_at = 90\n",
        kiosk::config::Config {
            language: "en".into(),
            show_occupancy: true,
            ..Default::default()
        },
    );
    let busy = "The park is busy: please plan your visit";
    let very_busy = "The park is very busy: no more tickets for today";
    assert_eq!(s.g().get_notice_en(), "", "nobody in yet");
    s.wait("the visitors inside", |s| {
        s.shows("Visitors in the park now: 0 of 20")
    });
    // Visitors in at a lane elsewhere on the site: 80 %, the first tier.
    s.block_on(
        s.k.central
            .admin("/sim/passage", json!({ "ticket_id": 1, "persons": 8 })),
    );
    s.wait("the first tier's notice", |s| s.g().get_notice_en() == busy);
    assert!(s.enabled(busy), "shown as text on the home screen");
    s.wait("the visitors inside, with the notice", |s| {
        s.shows("Visitors in the park now: 8 of 20")
    });
    assert!(s.enabled("Buy tickets"));
    // 90 %: today's sales stop; the notice says so; Buy stays open for later dates.
    s.block_on(
        s.k.central
            .admin("/sim/passage", json!({ "ticket_id": 2, "persons": 1 })),
    );
    s.wait("the notice of stopped sales", |s| {
        s.g().get_notice_en() == very_busy
    });
    assert!(s.enabled(very_busy));
    s.tap("Buy tickets");
    s.wait_screen(Screen::Buy);
    s.add("Adult day ticket", "", 1);
    s.tap("Next");
    s.wait_screen(Screen::Confirm);
    s.tap("Pay");
    s.wait_problem(Problem::SoldOut);
    s.tap("Choose again");
    s.wait_screen(Screen::Buy);
    s.tap("Tomorrow");
    s.wait_screen(Screen::Buy);
    s.add("Adult day ticket", "", 1);
    s.tap("Next");
    s.wait_screen(Screen::Confirm);
    s.tap("Pay");
    s.wait_screen(Screen::Pay);
    assert!(s.g().get_order_no().starts_with('O'), "tomorrow sells");
}

/// Large text (长辈模式): one tap on the home screen, the same flows with
/// larger text and targets, and it ends with the visit: after the tickets
/// are out, or when the visitor walks away.
#[test]
fn large_text_is_one_visitors_and_ends_with_the_visit() {
    let s = Screens::start();
    let normal = s.height_of("Buy tickets");
    s.tap("Large text");
    assert!(s.g().get_large_text());
    assert!(s.shows("Normal text"), "the toggle says how to go back");
    s.tap("Buy tickets");
    s.wait_screen(Screen::Buy);
    // The same flow, each step larger: the steppers stand under their product.
    assert!(s.height_of("Next") >= normal.min(104.0) * 1.3);
    s.add("Adult day ticket", "", 1);
    let no = s.checkout();
    s.block_on(
        s.k.central
            .admin(&format!("/sim/orders/{no}/paid"), json!({})),
    );
    s.advance(Duration::from_secs(2));
    s.wait_screen(Screen::Done);
    assert!(s.g().get_large_text(), "kept through the visit");
    s.tap("Done");
    s.wait_screen(Screen::Home);
    assert!(
        !s.g().get_large_text(),
        "the next visitor starts at the usual size"
    );
    assert!(!s.shows("Normal text"));

    // Chosen and left: the next visitor does not inherit it.
    s.tap("Large text");
    assert!(s.g().get_large_text());
    s.advance(Duration::from_secs(61));
    s.wait("large text off after inactivity", |s| {
        !s.g().get_large_text()
    });
}

/// An engineer's first minutes at a kiosk that is not enrolled: the setup
/// screen instead of the attract screen; a wrong pairing code and a setup
/// code for another device refused with gated's reason; the right setup code
/// scanned; the result screen with what the device found; then selling.
/// Later, from the service menu, enrolling again after a confirmation.
#[test]
fn an_unenrolled_kiosk_is_set_up_through_its_screens_and_enrolled_again_from_the_service_menu() {
    let s = Screens::start_unenrolled();
    assert!(s.shows("Scan the setup code"));
    assert!(!s.enabled("Enroll"), "nothing typed yet");
    // A typed pairing code the central system never issued.
    s.type_digits("12345678");
    assert_eq!(s.g().get_setup_code(), "12345678");
    s.tap("Enroll");
    s.wait("the unknown code refused", |s| {
        !s.g().get_busy() && s.g().get_setup_report().contains("does not exist")
    });
    assert_eq!(s.screen(), Screen::Setup);
    assert!(s.shows("setup refused"));
    // A setup code printed for another kiosk, scanned here.
    let other = s.block_on(s.k.central.setup_code("kiosk-9", "kiosk", 600, None));
    s.block_on(s.k.scanner.scan(&other)).unwrap();
    s.wait("the other device's code refused", |s| {
        s.g().get_setup_report().contains("for device kiosk-9")
    });
    // Nothing of it was kept.
    assert!(!s.k.state().join("credentials.json").exists());

    let good = s.block_on(s.k.central.setup_code("kiosk-1", "kiosk", 600, None));
    s.block_on(s.k.scanner.scan(&good)).unwrap();
    s.wait_screen(Screen::SetupResult);
    assert_eq!(s.g().get_setup_device(), "kiosk-1");
    assert!(s.shows("Enrolled as kiosk-1"));
    let rows: Vec<(String, String)> = s
        .g()
        .get_health()
        .iter()
        .map(|r| (r.name.to_string(), r.level.to_string()))
        .collect();
    assert!(
        rows.contains(&("central".into(), "green".into())),
        "online before the result is shown: {rows:?}"
    );
    for part in ["clock", "printer", "disk", "ups", "scanner qr"] {
        assert!(rows.iter().any(|(n, _)| n == part), "{part}: {rows:?}");
    }
    s.tap("Start");
    s.wait("the home screen to allow a sale", |s| {
        s.screen() == Screen::Home && s.g().get_can_sell()
    });
    // Enrolled: the setup method is closed to the kiosk; the PIN opens it.
    let (name, msg) = s
        .block_on(s.k.call("Setup", &(good.as_str(),)))
        .unwrap_err();
    assert!(name.ends_with("NotAuthorized"), "{name}: {msg}");

    s.tap("service");
    s.wait_screen(Screen::ServicePin);
    s.type_digits(PIN);
    s.tap("Enter");
    s.wait_screen(Screen::Service);
    s.wait("the health lines", |s| s.g().get_health().row_count() >= 5);
    s.tap("Enroll again");
    assert!(s.g().get_confirm_enroll_again(), "asked first");
    assert!(s.shows("leaves its current central system"));
    s.tap("Cancel");
    assert_eq!(s.screen(), Screen::Service);
    s.tap("Enroll again");
    s.tap("Enroll again");
    s.wait_screen(Screen::Setup);
    assert!(s.g().get_setup_again());
    let again = s.block_on(s.k.central.setup_code("kiosk-1", "kiosk", 600, None));
    s.block_on(s.k.scanner.scan(&again)).unwrap();
    s.wait_screen(Screen::SetupResult);
    s.tap("Start");
    s.wait("selling again", |s| {
        s.screen() == Screen::Home && s.g().get_can_sell()
    });
}
