//! Every screen filled with sample data, as a visitor would see it: for the
//! screenshot command, and for tests that look at every screen.

use std::path::{Path, PathBuf};

use slint::platform::software_renderer::MinimalSoftwareWindow;
use slint::{ComponentHandle, ModelRc, PlatformError, VecModel};

use crate::{
    AppWindow, DateChoice, Fact, FoundOrder, HealthRow, IdCard, Line, PayNote, Problem, Reason,
    SaleRow, Screen, TicketInfo, Ui, Week,
};

fn model<T: Clone + 'static>(v: Vec<T>) -> ModelRc<T> {
    ModelRc::new(VecModel::from(v))
}

/// A screen and its sample state, by name (the PNG's name).
pub const SCREENS: &[&str] = &[
    "home",
    "home-out-of-service",
    "home-fire-alarm",
    "home-park-busy",
    "home-occupancy",
    "home-large-text",
    "buy",
    "buy-large-text",
    "buy-calendar",
    "id-cards",
    "confirm",
    "pay",
    "printing",
    "done",
    "collect",
    "collect-number",
    "collect-found",
    "check",
    "check-result",
    "problem-sold-out",
    "problem-printer",
    "busy",
    "service-pin",
    "service-pin-wrong",
    "service",
    "service-enroll-again",
    "setup",
    "setup-refused",
    "setup-again",
    "setup-result",
    "setup-result-red",
];

/// A health line as gated sends it.
fn health(level: &str, name: &str, zh: &str, detail: &str, check: (&str, &str)) -> HealthRow {
    HealthRow {
        level: level.into(),
        name: name.into(),
        name_zh: zh.into(),
        detail: detail.into(),
        check_en: check.0.into(),
        check_zh: check.1.into(),
    }
}

/// A kiosk just enrolled: online, the printer low on nothing, no UPS answer.
fn health_rows(red: bool) -> Vec<HealthRow> {
    let ok = ("", "");
    let mut rows = vec![
        health(
            "green",
            "central",
            "中心连接",
            "online (https://central.example/api/v1)",
            ok,
        ),
        health(
            "green",
            "clock",
            "时钟",
            "+0.3 s from the central system",
            ok,
        ),
        health("green", "scanner kiosk-qr", "扫码器", "connected", ok),
        health("green", "id-reader desk", "身份证阅读器", "connected", ok),
        health(
            "green",
            "disk",
            "数据分区",
            "5120 MB free of 7800 MB (66 %)",
            ok,
        ),
    ];
    if red {
        rows.insert(
            0,
            health(
                "red",
                "printer",
                "打印机",
                "out of paper",
                (
                    "open the printer: paper, cover, cable and power",
                    "检查打印机：纸张、盖子、线缆和电源",
                ),
            ),
        );
        rows.push(health(
            "amber",
            "ups",
            "不间断电源",
            "no UPS configured",
            (
                "no UPS configured: a power cut stops the device without its fallback",
                "未配置UPS：断电时无法进入应急模式",
            ),
        ));
    } else {
        rows.insert(2, health("green", "printer", "打印机", "ready", ok));
        rows.push(health("green", "ups", "不间断电源", "on mains (100 %)", ok));
    }
    rows
}

fn date(i: i32) -> DateChoice {
    // 2026-11-22 is a Sunday.
    let day = 22 + i;
    let (month, day) = if day > 30 { (12, day - 30) } else { (11, day) };
    DateChoice {
        iso: format!("2026-{month:02}-{day:02}").into(),
        day,
        month,
        weekday: i % 7,
        offset: i,
        index: i,
    }
}

fn row(name: &str, en: &str, slot: &str, price: &str, remaining: i32, q: i32, rn: bool) -> SaleRow {
    SaleRow {
        name: name.into(),
        name_en: en.into(),
        slot: slot.into(),
        price: price.into(),
        remaining,
        quantity: q,
        max: remaining.clamp(0, 20),
        real_name: rn,
    }
}

/// Puts `ui` in the state of screen `name`.
pub fn set(ui: &AppWindow, name: &str) {
    let g = ui.global::<Ui>();
    g.set_busy(false);
    g.set_show_calendar(false);
    g.set_catalog_offline(false);
    g.set_large_text(false);
    g.set_show_occupancy(false);
    g.set_scenic_area("青山景区 Green Hills Scenic Area".into());
    g.set_can_sell(true);
    g.set_can_collect(true);
    g.set_can_check(true);
    g.set_reasons(model(vec![]));
    g.set_notice_zh("".into());
    g.set_notice_en("".into());
    let dates: Vec<DateChoice> = (0..14).map(date).collect();
    g.set_quick_dates(model(dates[..2].to_vec()));
    g.set_weeks(model(
        dates
            .chunks(4)
            .map(|w| Week {
                days: model(w.to_vec()),
            })
            .collect(),
    ));
    g.set_chosen_date(dates[0].clone());
    g.set_rows(model(vec![
        row("成人票", "Adult day ticket", "", "¥120.00", 198, 2, false),
        row(
            "儿童票",
            "Child ticket",
            "08:00–12:00",
            "¥60.00",
            3,
            1,
            false,
        ),
        row(
            "儿童票",
            "Child ticket",
            "12:00–17:00",
            "¥60.00",
            0,
            0,
            false,
        ),
        row("实名票", "Real-name ticket", "", "¥100.00", 200, 0, true),
        row("老年票", "Senior ticket", "", "¥60.00", 150, 0, false),
    ]));
    g.set_total("¥300.00".into());
    g.set_ticket_count(3);
    g.set_lines(model(vec![
        Line {
            name: "成人票".into(),
            name_en: "Adult day ticket".into(),
            slot: "".into(),
            quantity: 2,
            amount: "¥240.00".into(),
        },
        Line {
            name: "儿童票".into(),
            name_en: "Child ticket".into(),
            slot: "08:00–12:00".into(),
            quantity: 1,
            amount: "¥60.00".into(),
        },
    ]));
    g.set_date_label("2026-11-22".into());
    g.set_phone("13800138000".into());
    g.set_id_needed(3);
    g.set_id_cards(model(vec![
        IdCard {
            name: "张*".into(),
            number: "**************1234".into(),
            kind: "resident".into(),
        },
        IdCard {
            name: "玛**".into(),
            number: "**************0036".into(),
            kind: "foreigner-2023".into(),
        },
    ]));
    if let Ok(qr) = crate::qr::image("https://pay.example/q/O20261122042137?sig=3fa9c0", 14) {
        g.set_qr(qr);
    }
    g.set_order_no("O20261122042137".into());
    g.set_seconds_left(14 * 60 + 7);
    g.set_pay_note(PayNote::Waiting);
    g.set_printed(1);
    g.set_print_total(3);
    g.set_take_id_card(true);
    g.set_entry_order("20261122042137".into());
    g.set_entry_phone("80".into());
    g.set_entry_field(1);
    g.set_found(model(vec![
        FoundOrder {
            order_no: "O20261122042137".into(),
            date: "2026-11-22".into(),
            tickets: 3,
            unprinted: 3,
        },
        FoundOrder {
            order_no: "O20261120093011".into(),
            date: "2026-11-22".into(),
            tickets: 1,
            unprinted: 0,
        },
    ]));
    g.set_ticket(TicketInfo {
        state: "valid".into(),
        message: "有效票，可入园".into(),
        message_en: "Valid ticket".into(),
        product: "成人票".into(),
        product_en: "Adult day ticket".into(),
        valid_from: "2026-11-22 00:00".into(),
        valid_until: "2026-11-23 00:00".into(),
        entries_allowed: 1,
        entries_used: 0,
        entries_left: 1,
    });
    g.set_pin("●●●".into());
    g.set_pin_wrong(false);
    g.set_facts(model(
        [
            ("kiosk app", "0.1.0"),
            ("device", "kiosk-1"),
            ("role", "kiosk"),
            ("central link", "online"),
            ("central URL", "https://central.example/api/v1"),
            ("last sync", "2 s ago"),
            ("events not uploaded", "0"),
            ("clock skew", "-120 ms"),
            ("power", "on mains"),
            ("sale", "available"),
            ("printer", "ready"),
            ("scanner kiosk", "connected"),
            ("id-reader desk", "connected"),
        ]
        .into_iter()
        .map(|(k, v)| Fact {
            key: k.into(),
            value: v.into(),
        })
        .collect(),
    ));
    g.set_service_report("PASS: printed a test slip; printer ready".into());
    g.set_problem_detail("".into());
    g.set_health(model(health_rows(false)));
    g.set_health_level("green".into());
    g.set_confirm_enroll_again(false);
    g.set_setup_again(false);
    g.set_setup_code("4821".into());
    g.set_setup_report("".into());
    g.set_setup_device("kiosk-1".into());
    g.set_setup_site("泰山景区 Mount Tai".into());
    g.set_setup_central("https://central.example/api/v1".into());
    let screen = match name {
        "home" => Screen::Home,
        "home-out-of-service" => {
            g.set_can_sell(false);
            g.set_can_collect(false);
            g.set_reasons(model(vec![Reason::NoPaper]));
            Screen::Home
        }
        "home-fire-alarm" => {
            g.set_can_sell(false);
            g.set_can_collect(false);
            g.set_can_check(false);
            g.set_reasons(model(vec![Reason::Fire]));
            Screen::Home
        }
        "home-park-busy" => {
            // The tier that stops today's sales: the notice, and Buy still
            // open for later dates.
            g.set_notice_zh("景区游客较多，今日门票暂停销售".into());
            g.set_notice_en("The park is very busy: no more tickets for today".into());
            Screen::Home
        }
        "home-occupancy" => {
            // The site shows its figures: full, and the notice with them.
            g.set_show_occupancy(true);
            g.set_visitors_inside(5000);
            g.set_visitors_capacity(5000);
            g.set_notice_zh("景区游客已满，请稍候入园".into());
            g.set_notice_en("The park is full: please wait a moment".into());
            Screen::Home
        }
        "home-large-text" => {
            g.set_large_text(true);
            Screen::Home
        }
        "buy" => Screen::Buy,
        "buy-large-text" => {
            g.set_large_text(true);
            Screen::Buy
        }
        "buy-calendar" => {
            g.set_show_calendar(true);
            Screen::Buy
        }
        "id-cards" => Screen::IdCards,
        "confirm" => Screen::Confirm,
        "pay" => Screen::Pay,
        "printing" => Screen::Printing,
        "done" => Screen::Done,
        "collect" => Screen::Collect,
        "collect-number" => Screen::CollectNumber,
        "collect-found" => Screen::CollectFound,
        "check" => Screen::Check,
        "check-result" => Screen::CheckResult,
        "problem-sold-out" => {
            g.set_problem(Problem::SoldOut);
            Screen::Problem
        }
        "problem-printer" => {
            g.set_problem(Problem::PrinterAfterPayment);
            Screen::Problem
        }
        "busy" => {
            g.set_busy(true);
            Screen::Confirm
        }
        "service-pin" => Screen::ServicePin,
        "service-pin-wrong" => {
            g.set_pin("".into());
            g.set_pin_wrong(true);
            g.set_service_report("wrong PIN (3 attempts left before a 60 s wait)".into());
            Screen::ServicePin
        }
        "service" => Screen::Service,
        "service-enroll-again" => {
            g.set_confirm_enroll_again(true);
            Screen::Service
        }
        "setup" => Screen::Setup,
        "setup-refused" => {
            g.set_setup_code("".into());
            g.set_setup_report(
                "this pairing code was already used: ask for a new one (code_used)".into(),
            );
            Screen::Setup
        }
        "setup-again" => {
            g.set_setup_again(true);
            Screen::Setup
        }
        "setup-result" => Screen::SetupResult,
        "setup-result-red" => {
            g.set_health(model(health_rows(true)));
            g.set_health_level("red".into());
            Screen::SetupResult
        }
        other => panic!("no sample screen {other}"),
    };
    g.set_screen(screen);
}

/// Languages the screenshots are made in: (file suffix, translation, Ui.lang).
pub const LANGUAGES: &[(&str, &str, &str)] = &[("zh", "zh_CN", "zh"), ("en", "en", "en")];

/// Renders every screen in both languages and orientations into `dir`
/// (`<screen>-<lang>-<orientation>.png`); returns the files written.
pub fn render_all(
    window: &MinimalSoftwareWindow,
    ui: &AppWindow,
    dir: &Path,
) -> Result<Vec<PathBuf>, PlatformError> {
    let mut out = Vec::new();
    for (suffix, code, lang) in LANGUAGES {
        crate::app::show_language(ui, code);
        if ui.global::<Ui>().get_lang() != *lang {
            return Err(PlatformError::Other(format!("language {code} not bundled")));
        }
        for name in SCREENS {
            set(ui, name);
            for (o, size) in [
                ("portrait", crate::screenshot::PORTRAIT),
                ("landscape", crate::screenshot::LANDSCAPE),
            ] {
                let path = dir.join(format!("{name}-{suffix}-{o}.png"));
                crate::screenshot::save(window, ui, size, &path)?;
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// A named state of the UI and how to put the UI in it.
pub type State = (String, Box<dyn Fn(&AppWindow)>);

/// Every state that changes what a screen shows, for the layout check:
/// every sample screen, the home screen with each reason and notice, each
/// problem, and the longest names, prices and lists the samples allow
/// (1 to 20 tickets).
pub fn states() -> Vec<State> {
    let mut out: Vec<State> = SCREENS
        .iter()
        .map(|&s| {
            (
                s.to_owned(),
                Box::new(move |ui: &AppWindow| set(ui, s)) as Box<dyn Fn(&AppWindow)>,
            )
        })
        .collect();
    let mut add = |name: &str, f: Box<dyn Fn(&AppWindow)>| out.push((name.to_owned(), f));
    let reasons = [
        (Reason::Starting, false, false, false),
        (Reason::NotSetUp, false, false, false),
        (Reason::Offline, false, true, true),
        (Reason::NoPaper, false, false, true),
        (Reason::Printer, false, false, true),
        (Reason::Power, false, false, true),
        (Reason::Fire, false, false, false),
    ];
    for (reason, sell, collect, check) in reasons {
        // With the visitors inside and the busiest notice too: the most the
        // screen holds.
        add(
            &format!("home-{reason:?}-and-notice"),
            Box::new(move |ui| {
                set(ui, "home");
                let g = ui.global::<Ui>();
                g.set_can_sell(sell);
                g.set_can_collect(collect);
                g.set_can_check(check);
                g.set_reasons(model(vec![reason]));
                g.set_show_occupancy(true);
                g.set_visitors_inside(4812);
                g.set_visitors_capacity(5000);
                g.set_notice_zh("景区游客已满，请稍候入园".into());
                g.set_notice_en("The park is full: please wait a moment".into());
            }),
        );
    }
    let problems = [
        Problem::SoldOut,
        Problem::PaymentDeclined,
        Problem::PaymentExpired,
        Problem::PrinterAfterPayment,
        Problem::Offline,
        Problem::OutOfService,
        Problem::NotFound,
        Problem::AlreadyPrinted,
        Problem::IdExpired,
        Problem::NotATicket,
        Problem::Failed,
        Problem::Unavailable,
    ];
    for p in problems {
        add(
            &format!("problem-{p:?}"),
            Box::new(move |ui| {
                set(ui, "problem-sold-out");
                let g = ui.global::<Ui>();
                g.set_problem(p);
                g.set_problem_detail(
                    "the central system answered 503 Service Unavailable: try again in a minute (order O20261122042137)"
                        .into(),
                );
            }),
        );
    }
    let long_rows = || {
        (0..12)
            .map(|i| {
                row(
                    "夜游灯会与游船联票（含往返观光车）",
                    "Night lantern festival and boat combined ticket (with the return shuttle)",
                    if i % 2 == 0 { "18:30–21:45" } else { "" },
                    "¥1,280.00",
                    9999,
                    if i == 0 { 20 } else { 0 },
                    i % 3 == 0,
                )
            })
            .collect::<Vec<_>>()
    };
    add(
        "buy-long-names-20-tickets",
        Box::new(move |ui| {
            set(ui, "buy");
            let g = ui.global::<Ui>();
            g.set_rows(model(long_rows()));
            g.set_total("¥25,600.00".into());
            g.set_ticket_count(20);
        }),
    );
    add(
        "buy-offline-nothing-on-sale",
        Box::new(|ui| {
            set(ui, "buy");
            let g = ui.global::<Ui>();
            g.set_catalog_offline(true);
            g.set_rows(model(vec![]));
            g.set_total("¥0.00".into());
            g.set_ticket_count(0);
        }),
    );
    for n in [1, 20] {
        add(
            &format!("id-cards-{n}-of-20"),
            Box::new(move |ui| {
                set(ui, "id-cards");
                let g = ui.global::<Ui>();
                g.set_id_needed(20);
                g.set_id_cards(model(
                    (0..n)
                        .map(|i| IdCard {
                            name: if i % 2 == 0 {
                                "欧阳**"
                            } else {
                                "G********************"
                            }
                            .into(),
                            number: "**************1234".into(),
                            kind: [
                                "resident",
                                "foreigner-2017",
                                "foreigner-2023",
                                "hk-macao-taiwan",
                            ][i % 4]
                                .into(),
                        })
                        .collect(),
                ));
            }),
        );
    }
    add(
        "confirm-many-lines",
        Box::new(|ui| {
            set(ui, "confirm");
            let g = ui.global::<Ui>();
            g.set_lines(model(
                (0..8)
                    .map(|_| Line {
                        name: "夜游灯会与游船联票（含往返观光车）".into(),
                        name_en: "Night lantern festival and boat combined ticket (with the return shuttle)".into(),
                        slot: "18:30–21:45".into(),
                        quantity: 20,
                        amount: "¥25,600.00".into(),
                    })
                    .collect(),
            ));
            g.set_total("¥204,800.00".into());
            g.set_ticket_count(160);
        }),
    );
    add(
        "printing-20-of-20",
        Box::new(|ui| {
            set(ui, "printing");
            let g = ui.global::<Ui>();
            g.set_printed(20);
            g.set_print_total(20);
        }),
    );
    add(
        "collect-found-many",
        Box::new(|ui| {
            set(ui, "collect-found");
            ui.global::<Ui>().set_found(model(
                (0..10)
                    .map(|i| FoundOrder {
                        order_no: format!("O2026112204213{i}").into(),
                        date: "2026-11-22".into(),
                        tickets: 20,
                        unprinted: 20 - i,
                    })
                    .collect(),
            ));
        }),
    );
    add(
        "check-result-used",
        Box::new(|ui| {
            set(ui, "check-result");
            ui.global::<Ui>().set_ticket(TicketInfo {
                state: "used".into(),
                message: "票已使用，今日入园次数已满".into(),
                message_en: "Ticket already used: no entries left today".into(),
                product: "夜游灯会与游船联票（含往返观光车）".into(),
                product_en:
                    "Night lantern festival and boat combined ticket (with the return shuttle)"
                        .into(),
                valid_from: "2026-11-22 18:30".into(),
                valid_until: "2026-11-22 21:45".into(),
                entries_allowed: 20,
                entries_used: 20,
                entries_left: 0,
            });
        }),
    );
    out
}
