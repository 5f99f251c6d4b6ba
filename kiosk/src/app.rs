//! Binds the screens to gated: every tap becomes a D-Bus call, every answer
//! and signal a change of what the screen shows. The rules (prices,
//! quotas, payment, printing) are gated's; this only follows docs/dbus.md
//! ("A sale, step by step").
//!
//! D-Bus runs on a tokio thread. Its answers come back as jobs on a channel
//! that the UI thread drains (`pump`): the event loop is woken for them in
//! the app, and tests drain it themselves.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use futures_util::StreamExt;
use slint::{ComponentHandle, Model, ModelRc, SharedString, Timer, TimerMode, VecModel};

use crate::config::Config;
use crate::gated::{self, ErrorName, Gated};
use crate::{
    AppWindow, DateChoice, Fact, FoundOrder, IdCard, Language, Line, PayNote, Problem, Reason,
    SaleRow, Screen, TicketInfo, Ui, Week,
};

type Job = Box<dyn FnOnce(&Rc<App>) + Send>;

/// How often an unpaid QR order is asked for its status.
const POLL: Duration = Duration::from_secs(2);
/// Pixels per QR module: a 33-module code with its quiet zone is ~600 px.
const QR_SCALE: usize = 14;

/// One line of the cart: a product in a time slot.
#[derive(Debug, Clone)]
struct Item {
    product_id: u32,
    start_minute: u16,
    price_cents: u32,
    real_name: bool,
    /// ID cards to read per ticket (gated says: 1 for a real-name product).
    id_cards_per_ticket: u32,
    quantity: u32,
    /// Unknown while offline.
    remaining: Option<u32>,
    name: String,
    name_en: String,
    slot: String,
}

#[derive(Debug, Default)]
struct Sale {
    /// Tickets per line at most, and the days on sale: gated's limits.
    max_quantity: u32,
    dates: Vec<jiff::civil::Date>,
    date: usize,
    items: Vec<Item>,
    /// ID handles read for real-name tickets, in order.
    handles: Vec<String>,
    phone: String,
    order: Option<gated::Order>,
}

#[derive(Debug, Default)]
struct State {
    gated: Option<Gated>,
    reachable: bool,
    reasons: Vec<String>,
    sale: Sale,
    /// Orders still to print (collect), and tickets printed before the current one.
    print_queue: Vec<String>,
    printing: Option<String>,
    printed_before: i32,
    poll_in_flight: bool,
    /// What the problem screen's action button does.
    problem_then: Option<Screen>,
    /// The service PIN being typed (the screen shows dots).
    pin: String,
    /// The service session gated opened for the right PIN.
    service_token: Option<String>,
    /// The scenic area's name was asked for (once, not per state change).
    name_asked: bool,
}

pub struct App {
    ui: AppWindow,
    config: Config,
    bus: Option<String>,
    rt: tokio::runtime::Handle,
    tx: mpsc::Sender<Job>,
    rx: mpsc::Receiver<Job>,
    wake: Arc<dyn Fn() + Send + Sync>,
    state: RefCell<State>,
    idle: Timer,
    countdown: Timer,
    pay_deadline: Timer,
    poll: Timer,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("state", &self.state).finish()
    }
}

fn money(cents: u32) -> String {
    format!("¥{}.{:02}", cents / 100, cents % 100)
}

fn slot_label(start: u16, end: u16) -> String {
    if start == 0 && end >= 1440 {
        String::new()
    } else {
        format!(
            "{:02}:{:02}–{:02}:{:02}",
            start / 60,
            start % 60,
            end / 60,
            end % 60
        )
    }
}

/// Every language the screens can be shown in: English (the source) and
/// each bundled translation, Chinese first.
pub fn languages() -> Vec<Language> {
    let mut codes = vec!["en".to_owned()];
    // Slint lists its bundled translations when asked for one it lacks.
    if let Err(slint::SelectBundledTranslationError::LanguageNotFound {
        available_languages,
    }) = slint::select_bundled_translation("\u{1}")
    {
        // "" is the source language, English.
        codes.extend(
            available_languages
                .iter()
                .filter(|c| !c.is_empty())
                .map(|c| c.to_string()),
        );
    }
    codes.sort_by_key(|c| (!c.starts_with("zh"), c != "en", c.clone()));
    codes.dedup();
    codes
        .into_iter()
        .map(|code| {
            let name = match code.as_str() {
                "en" => "English",
                "zh_CN" | "zh" => "简体中文",
                "zh_TW" | "zh_HK" => "繁體中文",
                "ja" => "日本語",
                "ko" => "한국어",
                "ru" => "Русский",
                "fr" => "Français",
                "de" => "Deutsch",
                other => other,
            }
            .to_owned();
            Language {
                code: code.into(),
                name: name.into(),
            }
        })
        .collect()
}

/// Shows `ui` in `lang`: a translation's code, or "zh" for Chinese.
pub fn show_language(ui: &AppWindow, lang: &str) {
    let all = languages();
    let code = match lang {
        "zh" => "zh_CN",
        other => other,
    };
    let Some(i) = all.iter().position(|l| l.code == code) else {
        eprintln!("kiosk: no translation for {lang:?}; staying in the current language");
        return;
    };
    if let Err(e) = slint::select_bundled_translation(code) {
        eprintln!("kiosk: language {code}: {e}");
    }
    let g = ui.global::<Ui>();
    g.set_language(code.into());
    // The catalog has Chinese and English names; other languages show the English ones.
    g.set_lang(if code.starts_with("zh") { "zh" } else { "en" }.into());
    g.set_next_language(all[(i + 1) % all.len()].clone());
    g.set_languages(model(all));
}

fn model<T: Clone + 'static>(v: Vec<T>) -> ModelRc<T> {
    ModelRc::new(VecModel::from(v))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl App {
    /// Builds the controller for `ui`. `bus`: the bus address, `None` for
    /// the system bus. `wake` is called (from any thread)
    /// when jobs are waiting; the app's event loop pumps them then.
    pub fn new(
        ui: AppWindow,
        config: Config,
        bus: Option<String>,
        rt: tokio::runtime::Handle,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Rc<App> {
        let (tx, rx) = mpsc::channel();
        let app = Rc::new(App {
            ui,
            config,
            bus,
            rt,
            tx,
            rx,
            wake,
            state: RefCell::default(),
            idle: Timer::default(),
            countdown: Timer::default(),
            pay_deadline: Timer::default(),
            poll: Timer::default(),
        });
        app.bind();
        app.set_language(&app.config.language.clone());
        if let Some(p) = app.config.picture.clone() {
            match slint::Image::load_from_path(&p) {
                Ok(img) => {
                    app.g().set_picture(img);
                    app.g().set_has_picture(true);
                }
                Err(e) => eprintln!(
                    "kiosk: picture {}: {e:?}; showing the drawn one",
                    p.display()
                ),
            }
        }
        app.show_reasons();
        app.connect();
        app
    }

    pub fn ui(&self) -> &AppWindow {
        &self.ui
    }

    fn g(&self) -> Ui<'_> {
        self.ui.global::<Ui>()
    }

    /// Runs the jobs that arrived; returns how many.
    pub fn pump(self: &Rc<Self>) -> usize {
        let mut n = 0;
        while let Ok(job) = self.rx.try_recv() {
            job(self);
            n += 1;
        }
        n
    }

    /// Waits up to `timeout` for a job, then runs what arrived (tests).
    pub fn pump_wait(self: &Rc<Self>, timeout: Duration) -> usize {
        match self.rx.recv_timeout(timeout) {
            Ok(job) => {
                job(self);
                1 + self.pump()
            }
            Err(_) => 0,
        }
    }

    /// Sends a job to the UI thread and wakes it (from any thread).
    fn post(&self) -> impl Fn(Job) + Clone + Send + 'static {
        let tx = self.tx.clone();
        let wake = self.wake.clone();
        move |job| {
            if tx.send(job).is_ok() {
                wake();
            }
        }
    }

    /// Runs `fut` on the D-Bus thread and `then` with its result here.
    fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
        then: impl FnOnce(&Rc<App>, T) + Send + 'static,
    ) {
        let post = self.post();
        self.rt.spawn(async move {
            let v = fut.await;
            post(Box::new(move |app: &Rc<App>| then(app, v)));
        });
    }

    /// Turns each signal of a stream into a job here, for as long as the
    /// stream lasts.
    fn forward<St: futures_util::Stream + Send + 'static>(
        &self,
        stream: impl Future<Output = zbus::Result<St>> + Send + 'static,
        job: impl Fn(St::Item) -> Option<Job> + Send + 'static,
    ) {
        let post = self.post();
        self.rt.spawn(async move {
            let Ok(st) = stream.await else { return };
            let mut st = std::pin::pin!(st);
            while let Some(sig) = st.next().await {
                if let Some(j) = job(sig) {
                    post(j);
                }
            }
        });
    }

    /// A call to gated on behalf of the visitor: the screen shows "please
    /// wait" until it answers. Without gated, the visitor is told.
    fn call<T: Send + 'static, F: Future<Output = zbus::Result<T>> + Send + 'static>(
        self: &Rc<Self>,
        f: impl FnOnce(Gated) -> F,
        then: impl FnOnce(&Rc<App>, zbus::Result<T>) + Send + 'static,
    ) {
        let Some(g) = self.state.borrow().gated.clone() else {
            self.problem(Problem::Unavailable, "", None);
            return;
        };
        self.g().set_busy(true);
        self.spawn(f(g), move |app, r| {
            app.g().set_busy(false);
            then(app, r)
        });
    }

    fn screen(&self) -> Screen {
        self.g().get_screen()
    }

    fn show(self: &Rc<Self>, s: Screen) {
        self.g().set_screen(s);
        self.touched();
    }

    // --- wiring ---

    fn bind(self: &Rc<Self>) {
        let g = self.g();
        macro_rules! on {
            ($setter:ident, |$app:ident $(, $arg:ident)*| $body:expr) => {{
                let w = Rc::downgrade(self);
                g.$setter(move |$($arg),*| {
                    if let Some($app) = w.upgrade() {
                        $body
                    }
                });
            }};
        }
        on!(on_touched, |app| app.touched());
        on!(on_choose_language, |app, lang| app.set_language(&lang));
        on!(on_go_home, |app| app.go_home());
        on!(on_start_buy, |app| app.start_buy());
        on!(on_start_collect, |app| app.show(Screen::Collect));
        on!(on_start_check, |app| app.show(Screen::Check));
        on!(on_choose_date, |app, i| app.choose_date(i as usize));
        on!(on_toggle_calendar, |app| {
            let g = app.g();
            g.set_show_calendar(!g.get_show_calendar());
        });
        on!(on_step, |app, row, delta| app.step(row as usize, delta));
        on!(on_buy_next, |app| app.buy_next());
        on!(on_confirm_back, |app| app.show(Screen::Buy));
        on!(on_pay, |app| app.create_order());
        on!(on_cancel_payment, |app| app.cancel_payment());
        on!(on_collect_by_number, |app| {
            let g = app.g();
            g.set_entry_order("".into());
            g.set_entry_phone("".into());
            g.set_entry_field(0);
            app.show(Screen::CollectNumber);
        });
        on!(on_key, |app, k| app.key(&k));
        on!(on_select_field, |app, f| app.g().set_entry_field(f));
        on!(on_collect_search, |app| {
            let order = format!("O{}", app.g().get_entry_order());
            let suffix = app.g().get_entry_phone().to_string();
            app.pickup("phone", order, suffix);
        });
        on!(on_collect_print, |app| app.collect_print());
        on!(on_problem_action, |app| app.problem_action());
        on!(on_open_service, |app| {
            app.g().set_pin("".into());
            app.g().set_pin_wrong(false);
            app.state.borrow_mut().pin.clear();
            app.show(Screen::ServicePin);
        });
        on!(on_service_test_print, |app| app.service_test_print());
        on!(on_service_sync, |app| app.service_sync());
        on!(on_service_refresh, |app| app.service_refresh());
    }

    /// Every tap restarts the inactivity timer.
    fn touched(self: &Rc<Self>) {
        let w = Rc::downgrade(self);
        self.idle.start(
            TimerMode::SingleShot,
            Duration::from_secs(self.config.idle_timeout_s),
            move || {
                if let Some(app) = w.upgrade() {
                    app.idle_timeout();
                }
            },
        );
    }

    fn idle_timeout(self: &Rc<Self>) {
        match self.screen() {
            // Never while paying (the order's own deadline ends it) or printing.
            Screen::Home | Screen::Pay | Screen::Printing => {}
            _ if self.g().get_busy() => self.touched(),
            _ => self.go_home(),
        }
    }

    fn set_language(&self, lang: &str) {
        show_language(&self.ui, lang);
    }

    /// Back to the attract screen: an unpaid order is cancelled, the next
    /// visitor starts in the default language.
    pub fn go_home(self: &Rc<Self>) {
        self.stop_payment_timers();
        let unpaid = self.state.borrow_mut().sale.order.take();
        if let Some(o) = unpaid
            && let Some(g) = self.state.borrow().gated.clone()
        {
            self.spawn(async move { g.kiosk.cancel(&o.order_no).await }, |_, r| {
                if let Err(e) = r {
                    // NotPayable: it was paid or expired meanwhile; gated has it.
                    eprintln!("kiosk: cancel on the way home: {}", gated::error_name(&e).1);
                }
            });
        }
        self.state.borrow_mut().sale = Sale::default();
        self.close_service_session();
        let g = self.g();
        g.set_order_no("".into());
        g.set_show_calendar(false);
        g.set_problem_detail("".into());
        self.set_language(&self.config.language.clone());
        self.show(Screen::Home);
        self.idle.stop();
    }

    // --- gated's state ---

    fn connect(self: &Rc<Self>) {
        let bus = self.bus.clone();
        self.spawn(
            async move {
                let mut said = String::new();
                loop {
                    match Gated::connect(bus.as_deref()).await {
                        Ok(g) => return g,
                        Err(e) => {
                            // Once per distinct error: the bus may take a while.
                            let e = e.to_string();
                            if e != said {
                                eprintln!("kiosk: D-Bus: {e}; retrying every 2 s");
                                said = e;
                            }
                            tokio::time::sleep(Duration::from_secs(2)).await;
                        }
                    }
                }
            },
            |app, g| {
                app.state.borrow_mut().gated = Some(g.clone());
                app.follow(g);
            },
        );
    }

    /// Follows gated: its presence, its sale state, its signals.
    fn follow(self: &Rc<Self>, g: Gated) {
        let post = self.post();
        let k = g.kiosk.clone();
        self.rt.spawn(async move {
            // Re-read on every change and whenever gated (re)appears. The
            // sale state changes by PropertiesChanged (a mode, the link), which
            // is not one of Kiosk1's own signals (PrinterStatus and the rest).
            // The proxy caches nothing, so its property streams would end at
            // once: follow Kiosk1's PropertiesChanged itself.
            let Ok(mut changes) = k.inner().receive_all_signals().await else {
                return;
            };
            let Ok(mut owner) = k.inner().receive_owner_changed().await else {
                return;
            };
            let Ok(props) = zbus::fdo::PropertiesProxy::builder(k.inner().connection())
                .destination(k.inner().destination().to_owned())
                .path(k.inner().path().to_owned())
                .build()
                .await
            else {
                return;
            };
            let Ok(mut props_changed) = props
                .receive_properties_changed_with_args(&[(0, k.inner().interface().as_str())])
                .await
            else {
                return;
            };
            loop {
                let avail = k.sale_available().await;
                let reasons = k.out_of_service_reasons().await;
                let state = match (avail, reasons) {
                    (Ok(_), Ok(r)) => Some(r),
                    _ => None,
                };
                post(Box::new(move |app: &Rc<App>| app.set_reasons(state)));
                tokio::select! {
                    _ = owner.next() => {}
                    m = props_changed.next() => if m.is_none() { return },
                    m = changes.next() => if m.is_none() { return },
                }
            }
        });
        let k = g.kiosk.clone();
        self.forward(async move { k.receive_code_scanned().await }, |sig| {
            let code = sig.args().ok()?.code.clone();
            Some(Box::new(move |app: &Rc<App>| app.code_scanned(code)))
        });
        let k = g.kiosk.clone();
        self.forward(async move { k.receive_id_card_read().await }, |sig| {
            let a = sig.args().ok()?;
            let (h, name, number) = (
                a.handle.clone(),
                a.name_masked.clone(),
                a.number_masked.clone(),
            );
            Some(Box::new(move |app: &Rc<App>| {
                app.id_card_read(h, name, number)
            }))
        });
        let k = g.kiosk;
        self.forward(async move { k.receive_ticket_printed().await }, |sig| {
            let a = sig.args().ok()?;
            let (no, printed, total) = (a.order_no.clone(), a.printed, a.total);
            Some(Box::new(move |app: &Rc<App>| {
                app.ticket_printed(no, printed, total)
            }))
        });
    }

    /// `None`: gated is not on the bus.
    fn set_reasons(self: &Rc<Self>, reasons: Option<Vec<String>>) {
        {
            let mut st = self.state.borrow_mut();
            st.reachable = reasons.is_some();
            st.reasons = reasons.unwrap_or_default();
        }
        self.show_reasons();
        // The home screen names the scenic area from the catalog.
        let g = {
            let mut st = self.state.borrow_mut();
            let ask = st.reachable && !st.name_asked && self.g().get_scenic_area().is_empty();
            st.name_asked |= ask;
            st.gated.clone().filter(|_| ask)
        };
        if let Some(g) = g {
            self.spawn(async move { g.kiosk.catalog("").await }, |app, r| {
                match r.and_then(|j| gated::parse::<gated::CatalogView>("Catalog", &j)) {
                    Ok(c) => app.g().set_scenic_area(c.scenic_area.into()),
                    // No catalog yet: ask again at the next change.
                    Err(_) => app.state.borrow_mut().name_asked = false,
                }
            });
        }
    }

    fn show_reasons(&self) {
        let st = self.state.borrow();
        let mut shown: Vec<Reason> = if st.reachable {
            st.reasons
                .iter()
                .map(|r| match r.as_str() {
                    "offline" => Reason::Offline,
                    "printer_out_of_paper" => Reason::NoPaper,
                    "printer_not_ready" => Reason::Printer,
                    "power_fallback" => Reason::Power,
                    "fire_alarm" => Reason::Fire,
                    _ => Reason::NotSetUp,
                })
                .collect()
        } else {
            vec![Reason::Starting]
        };
        // Fire first, then mains: they explain the others.
        shown.sort_by_key(|r| match r {
            Reason::Fire => 0,
            Reason::Power => 1,
            _ => 2,
        });
        // In a fire alarm the machine is out of service: people must leave.
        let fire = shown.contains(&Reason::Fire);
        let printer = shown
            .iter()
            .any(|r| matches!(r, Reason::NoPaper | Reason::Printer | Reason::Power));
        let g = self.g();
        g.set_can_sell(st.reachable && shown.is_empty());
        g.set_can_collect(st.reachable && !printer && !fire);
        g.set_can_check(st.reachable && !fire);
        g.set_reasons(model(shown));
    }

    // --- signals ---

    fn code_scanned(self: &Rc<Self>, code: String) {
        self.touched();
        match self.screen() {
            Screen::Pay => self.pay_with_code(code),
            Screen::Collect | Screen::CollectNumber => {
                self.pickup("order_code", code, String::new())
            }
            Screen::Check | Screen::CheckResult => self.query(code),
            // From the attract screen, a ticket is checked and an order collected.
            Screen::Home if code.starts_with("T1:") && self.g().get_can_check() => self.query(code),
            Screen::Home if code.starts_with("OC:") && self.g().get_can_collect() => {
                self.pickup("order_code", code, String::new())
            }
            _ => {}
        }
    }

    fn id_card_read(self: &Rc<Self>, handle: String, name: String, number: String) {
        self.touched();
        match self.screen() {
            Screen::IdCards => {
                let needed = self.g().get_id_needed() as usize;
                let mut st = self.state.borrow_mut();
                if st.sale.handles.len() < needed {
                    st.sale.handles.push(handle);
                    drop(st);
                    let cards = self.g().get_id_cards();
                    let mut v: Vec<IdCard> = cards.iter().collect();
                    v.push(IdCard {
                        name: name.into(),
                        number: number.into(),
                    });
                    self.g().set_id_cards(model(v));
                }
            }
            Screen::Collect => self.pickup("id", handle, String::new()),
            _ => {}
        }
    }

    fn ticket_printed(&self, order_no: String, printed: u32, total: u32) {
        let st = self.state.borrow();
        if st.printing.as_deref() != Some(order_no.as_str()) {
            return;
        }
        let g = self.g();
        g.set_printed(st.printed_before + printed as i32);
        g.set_print_total(g.get_print_total().max(st.printed_before + total as i32));
    }

    // --- buying ---

    fn start_buy(self: &Rc<Self>) {
        self.state.borrow_mut().sale = Sale::default();
        self.load_catalog(String::new());
    }

    fn load_catalog(self: &Rc<Self>, date: String) {
        self.call(
            move |g| async move {
                let c =
                    gated::parse::<gated::CatalogView>("Catalog", &g.kiosk.catalog(&date).await?)?;
                let limits = (
                    g.kiosk.max_quantity().await?,
                    g.kiosk.sale_horizon_days().await?,
                );
                Ok((c, limits))
            },
            |app, r| match r {
                Ok((c, limits)) => app.show_catalog(c, limits),
                Err(e) => app.call_failed(&e),
            },
        );
    }

    /// `limits`: (tickets per line, days on sale), as gated enforces them.
    fn show_catalog(self: &Rc<Self>, c: gated::CatalogView, limits: (u32, u32)) {
        let Ok(day) = c.date.parse::<jiff::civil::Date>() else {
            self.problem(
                Problem::Failed,
                &format!("bad date {:?} from gated", c.date),
                None,
            );
            return;
        };
        let mut st = self.state.borrow_mut();
        st.sale.max_quantity = limits.0;
        if st.sale.dates.is_empty() {
            // The first answer is for today in the scenic area's time zone.
            st.sale.dates = (0..limits.1)
                .filter_map(|i| day.checked_add(jiff::Span::new().days(i64::from(i))).ok())
                .collect();
        }
        st.sale.date = st.sale.dates.iter().position(|d| *d == day).unwrap_or(0);
        st.sale.items = c
            .products
            .iter()
            .flat_map(|p| {
                p.slots.iter().map(move |s| Item {
                    product_id: p.id,
                    start_minute: s.start_minute,
                    price_cents: p.price_cents,
                    real_name: p.real_name,
                    id_cards_per_ticket: p.id_cards_per_ticket,
                    quantity: 0,
                    remaining: s.remaining,
                    name: p.name.clone(),
                    name_en: p.name_en.clone(),
                    slot: slot_label(s.start_minute, s.end_minute),
                })
            })
            .collect();
        let offline = st.sale.items.iter().any(|i| i.remaining.is_none());
        let g = self.g();
        g.set_scenic_area(c.scenic_area.as_str().into());
        g.set_catalog_offline(offline);
        let choices: Vec<DateChoice> = st
            .sale
            .dates
            .iter()
            .enumerate()
            .map(|(i, d)| DateChoice {
                iso: d.to_string().into(),
                day: i32::from(d.day()),
                month: i32::from(d.month()),
                weekday: i32::from(d.weekday().to_sunday_zero_offset()),
                offset: i as i32,
                index: i as i32,
            })
            .collect();
        g.set_quick_dates(model(choices.iter().take(2).cloned().collect()));
        g.set_weeks(model(
            choices
                .chunks(4)
                .map(|w| Week {
                    days: model(w.to_vec()),
                })
                .collect(),
        ));
        if let Some(d) = choices.get(st.sale.date) {
            g.set_chosen_date(d.clone());
        }
        g.set_show_calendar(false);
        drop(st);
        self.show_rows();
        self.show(Screen::Buy);
    }

    fn show_rows(&self) {
        let st = self.state.borrow();
        let max = st.sale.max_quantity;
        let rows: Vec<SaleRow> = st
            .sale
            .items
            .iter()
            .map(|i| SaleRow {
                name: i.name.as_str().into(),
                name_en: i.name_en.as_str().into(),
                slot: i.slot.as_str().into(),
                price: money(i.price_cents).into(),
                remaining: i.remaining.map_or(-1, |n| n.min(9999) as i32),
                quantity: i.quantity as i32,
                max: i.remaining.map_or(max, |r| r.min(max)) as i32,
                real_name: i.real_name,
            })
            .collect();
        let total: u32 = st
            .sale
            .items
            .iter()
            .map(|i| i.price_cents * i.quantity)
            .sum();
        let count: u32 = st.sale.items.iter().map(|i| i.quantity).sum();
        let g = self.g();
        g.set_rows(model(rows));
        g.set_total(money(total).into());
        g.set_ticket_count(count as i32);
    }

    fn choose_date(self: &Rc<Self>, i: usize) {
        let date = self.state.borrow().sale.dates.get(i).map(|d| d.to_string());
        if let Some(date) = date {
            self.load_catalog(date);
        }
    }

    fn step(&self, row: usize, delta: i32) {
        {
            let mut st = self.state.borrow_mut();
            let max = st.sale.max_quantity;
            let Some(item) = st.sale.items.get_mut(row) else {
                return;
            };
            let max = item.remaining.map_or(max, |r| r.min(max));
            item.quantity = item.quantity.saturating_add_signed(delta).min(max);
        }
        self.show_rows();
    }

    /// Buy → ID cards (when real-name tickets are in the cart) → confirm.
    fn buy_next(self: &Rc<Self>) {
        let needed: u32 = {
            let st = self.state.borrow();
            st.sale
                .items
                .iter()
                .map(|i| i.id_cards_per_ticket * i.quantity)
                .sum()
        };
        let read = self.state.borrow().sale.handles.len() as u32;
        if self.screen() == Screen::Buy && needed > 0 {
            if read != needed {
                self.state.borrow_mut().sale.handles.clear();
                self.g().set_id_cards(model(Vec::new()));
            }
            self.g().set_id_needed(needed as i32);
            self.show(Screen::IdCards);
            return;
        }
        let st = self.state.borrow();
        let lines: Vec<Line> = st
            .sale
            .items
            .iter()
            .filter(|i| i.quantity > 0)
            .map(|i| Line {
                name: i.name.as_str().into(),
                name_en: i.name_en.as_str().into(),
                slot: i.slot.as_str().into(),
                quantity: i.quantity as i32,
                amount: money(i.price_cents * i.quantity).into(),
            })
            .collect();
        let date = st.sale.dates.get(st.sale.date).map(|d| d.to_string());
        drop(st);
        let g = self.g();
        g.set_lines(model(lines));
        g.set_date_label(date.unwrap_or_default().into());
        g.set_phone("".into());
        self.state.borrow_mut().sale.phone.clear();
        self.show(Screen::Confirm);
    }

    fn create_order(self: &Rc<Self>) {
        let (date, items, handles, phone) = {
            let st = self.state.borrow();
            let s = &st.sale;
            // Real-name items first take the handles in the order the cards were read.
            let items: Vec<(u32, u16, u16)> = s
                .items
                .iter()
                .filter(|i| i.quantity > 0)
                .map(|i| (i.product_id, i.start_minute, i.quantity as u16))
                .collect();
            (
                s.dates
                    .get(s.date)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                items,
                s.handles.clone(),
                s.phone.clone(),
            )
        };
        self.call(
            move |g| async move {
                let h: Vec<&str> = handles.iter().map(String::as_str).collect();
                let order = g.kiosk.create_order(&date, &items, &h, &phone).await?;
                let order: gated::Order = gated::parse("CreateOrder", &order)?;
                let paid = g.kiosk.pay(&order.order_no, "qr", "").await;
                Ok((order, paid))
            },
            |app, r| match r {
                Ok((order, Ok((_, qr, expires)))) => app.show_payment(order, &qr, expires),
                Ok((order, Err(e))) => {
                    // The order exists but cannot be paid: release its quota.
                    app.state.borrow_mut().sale.order = Some(order);
                    app.call_failed(&e);
                }
                Err(e) => app.call_failed(&e),
            },
        );
    }

    fn show_payment(self: &Rc<Self>, order: gated::Order, qr: &str, expires_at_ms: i64) {
        let g = self.g();
        match crate::qr::image(qr, QR_SCALE) {
            Ok(img) => g.set_qr(img),
            Err(e) => eprintln!("kiosk: cannot draw the payment QR: {e}"),
        }
        g.set_order_no(order.order_no.as_str().into());
        g.set_total(money(order.total_cents).into());
        g.set_pay_note(PayNote::Waiting);
        // The screen waits pay_timeout_s at most, and never past the order's expiry.
        let window = (expires_at_ms - now_ms()).clamp(0, self.config.pay_timeout_s as i64 * 1000);
        let mut o = order;
        o.expires_at_ms = now_ms() + window;
        self.state.borrow_mut().sale.order = Some(o);
        self.tick_countdown();
        let w = Rc::downgrade(self);
        self.pay_deadline.start(
            TimerMode::SingleShot,
            Duration::from_millis(window as u64),
            move || {
                if let Some(app) = w.upgrade()
                    && app.screen() == Screen::Pay
                {
                    app.g().set_seconds_left(0);
                    app.cancel_payment();
                }
            },
        );
        let w = Rc::downgrade(self);
        self.countdown
            .start(TimerMode::Repeated, Duration::from_secs(1), move || {
                if let Some(app) = w.upgrade() {
                    app.tick_countdown();
                }
            });
        let w = Rc::downgrade(self);
        self.poll.start(TimerMode::Repeated, POLL, move || {
            if let Some(app) = w.upgrade() {
                app.poll_order();
            }
        });
        self.show(Screen::Pay);
    }

    fn tick_countdown(self: &Rc<Self>) {
        let Some(expires) = self
            .state
            .borrow()
            .sale
            .order
            .as_ref()
            .map(|o| o.expires_at_ms)
        else {
            return;
        };
        // What the visitor reads; the deadline itself is pay_deadline's.
        let left = ((expires - now_ms() + 999) / 1000).max(0);
        self.g().set_seconds_left(left as i32);
    }

    fn stop_payment_timers(&self) {
        self.countdown.stop();
        self.pay_deadline.stop();
        self.poll.stop();
    }

    fn order_no(&self) -> Option<String> {
        self.state
            .borrow()
            .sale
            .order
            .as_ref()
            .map(|o| o.order_no.clone())
    }

    /// Asks gated for the order's status (which also stores a QR payment).
    fn poll_order(self: &Rc<Self>) {
        let Some(no) = self.order_no() else { return };
        let Some(g) = self.state.borrow().gated.clone() else {
            return;
        };
        if std::mem::replace(&mut self.state.borrow_mut().poll_in_flight, true) {
            return;
        }
        self.spawn(async move { g.kiosk.order_status(&no).await }, |app, r| {
            app.state.borrow_mut().poll_in_flight = false;
            if app.screen() != Screen::Pay {
                return;
            }
            match r.as_deref() {
                Ok("paid") => app.paid(),
                Ok("expired" | "cancelled" | "refunded") => app.payment_ended(),
                Ok(_) => {}
                // Polling goes on; the countdown ends it.
                Err(e) => eprintln!("kiosk: order status: {}", gated::error_name(e).1),
            }
        });
    }

    fn pay_with_code(self: &Rc<Self>, code: String) {
        let Some(no) = self.order_no() else { return };
        self.g().set_pay_note(PayNote::Checking);
        self.call(
            move |g| async move { g.kiosk.pay(&no, "code", &code).await },
            |app, r| match r {
                Ok((status, _, _)) if status == "paid" => app.paid(),
                Ok(_) => app.g().set_pay_note(PayNote::Waiting),
                Err(e) => match gated::error_name(&e).0 {
                    ErrorName::PaymentDeclined | ErrorName::InvalidArgument => {
                        app.g().set_pay_note(PayNote::Declined)
                    }
                    ErrorName::NotPayable => app.check_after_not_payable(),
                    _ => app.call_failed(&e),
                },
            },
        );
    }

    fn cancel_payment(self: &Rc<Self>) {
        let Some(no) = self.order_no() else {
            self.go_home();
            return;
        };
        let timed_out = self.g().get_seconds_left() == 0;
        self.stop_payment_timers();
        self.call(
            move |g| async move { g.kiosk.cancel(&no).await },
            move |app, r| match r {
                Ok(()) if timed_out => app.payment_ended(),
                Ok(()) => {
                    app.state.borrow_mut().sale.order = None;
                    app.go_home();
                }
                // Paid (or expired) at the last second: find out which.
                Err(_) => app.check_after_not_payable(),
            },
        );
    }

    fn check_after_not_payable(self: &Rc<Self>) {
        let Some(no) = self.order_no() else { return };
        self.call(
            move |g| async move { g.kiosk.order_status(&no).await },
            |app, r| match r.as_deref() {
                Ok("paid") => app.paid(),
                Ok(_) => app.payment_ended(),
                Err(e) => app.call_failed(e),
            },
        );
    }

    fn payment_ended(self: &Rc<Self>) {
        self.stop_payment_timers();
        self.state.borrow_mut().sale.order = None;
        self.problem(Problem::PaymentExpired, "", Some(Screen::Home));
    }

    fn paid(self: &Rc<Self>) {
        self.stop_payment_timers();
        let Some(order) = self.state.borrow_mut().sale.order.take() else {
            return;
        };
        let id = !self.state.borrow().sale.handles.is_empty();
        self.g().set_take_id_card(id);
        self.g().set_order_no(order.order_no.as_str().into());
        let total: u32 = self
            .state
            .borrow()
            .sale
            .items
            .iter()
            .map(|i| i.quantity)
            .sum();
        self.print(vec![order.order_no], total as i32);
    }

    // --- printing ---

    /// Prints the orders one after the other; `total` tickets in all.
    fn print(self: &Rc<Self>, orders: Vec<String>, total: i32) {
        {
            let mut st = self.state.borrow_mut();
            st.print_queue = orders;
            st.print_queue.reverse();
            st.printed_before = 0;
        }
        let g = self.g();
        g.set_printed(0);
        g.set_print_total(total);
        self.show(Screen::Printing);
        self.print_next();
    }

    fn print_next(self: &Rc<Self>) {
        let Some(no) = self.state.borrow_mut().print_queue.pop() else {
            self.state.borrow_mut().printing = None;
            self.show(Screen::Done);
            return;
        };
        self.state.borrow_mut().printing = Some(no.clone());
        let Some(g) = self.state.borrow().gated.clone() else {
            self.problem(Problem::Unavailable, "", None);
            return;
        };
        let n = no.clone();
        self.spawn(
            async move { g.kiosk.print(&n).await },
            move |app, r| match r {
                Ok(printed) => {
                    let before = app.state.borrow().printed_before + printed as i32;
                    app.state.borrow_mut().printed_before = before;
                    app.g().set_printed(before);
                    app.print_next();
                }
                Err(e) => {
                    app.state.borrow_mut().printing = None;
                    let (name, msg) = gated::error_name(&e);
                    eprintln!("kiosk: print {no}: {name:?}: {msg}");
                    app.g().set_order_no(no.as_str().into());
                    if name == ErrorName::AlreadyPrinted {
                        app.problem(Problem::AlreadyPrinted, "", None);
                    } else {
                        app.problem(Problem::PrinterAfterPayment, "", None);
                    }
                }
            },
        );
    }

    // --- collecting and checking ---

    fn pickup(self: &Rc<Self>, by: &'static str, value: String, suffix: String) {
        self.call(
            move |g| async move { g.kiosk.pickup(by, &value, &suffix).await },
            move |app, r| match r.and_then(|j| gated::parse::<Vec<gated::PickupView>>("Pickup", &j))
            {
                Ok(found) if found.is_empty() => {
                    app.problem(Problem::NotFound, "", Some(Screen::Collect))
                }
                Ok(found) => {
                    let unprinted: usize = found.iter().map(|o| o.unprinted).sum();
                    let g = app.g();
                    g.set_found(model(
                        found
                            .iter()
                            .map(|o| FoundOrder {
                                order_no: o.order_no.as_str().into(),
                                date: o.date.as_str().into(),
                                tickets: o.tickets as i32,
                                unprinted: o.unprinted as i32,
                            })
                            .collect(),
                    ));
                    g.set_ticket_count(unprinted as i32);
                    g.set_take_id_card(by == "id");
                    app.show(Screen::CollectFound);
                }
                Err(e) if gated::error_name(&e).0 == ErrorName::InvalidArgument => {
                    let p = if by == "id" {
                        Problem::IdExpired
                    } else {
                        Problem::NotFound
                    };
                    app.problem(p, "", Some(Screen::Collect))
                }
                Err(e) => app.call_failed(&e),
            },
        );
    }

    fn collect_print(self: &Rc<Self>) {
        let found = self.g().get_found();
        let orders: Vec<String> = found
            .iter()
            .filter(|o| o.unprinted > 0)
            .map(|o| o.order_no.to_string())
            .collect();
        let total: i32 = found.iter().map(|o| o.unprinted).sum();
        if let Some(first) = orders.first() {
            self.g().set_order_no(first.as_str().into());
        }
        self.print(orders, total);
    }

    fn query(self: &Rc<Self>, code: String) {
        self.call(
            move |g| async move { g.kiosk.query(&code).await },
            |app, r| match r.and_then(|j| gated::parse::<gated::QueryView>("Query", &j)) {
                Ok(q) => {
                    let opt = |v: Option<u32>| v.map_or(-1, |n| n.min(9999) as i32);
                    app.g().set_ticket(TicketInfo {
                        state: q.state.as_str().into(),
                        message: q.message_zh.as_str().into(),
                        message_en: q.message_en.as_str().into(),
                        product: q.product.as_str().into(),
                        product_en: q.product_en.as_str().into(),
                        valid_from: q.valid_from.replace('T', " ").into(),
                        valid_until: q.valid_until.replace('T', " ").into(),
                        entries_allowed: i32::from(q.entries_allowed),
                        entries_used: opt(q.entries_used),
                        entries_left: opt(q.entries_left),
                    });
                    app.show(Screen::CheckResult);
                }
                Err(e) if gated::error_name(&e).0 == ErrorName::InvalidArgument => {
                    app.problem(Problem::NotATicket, "", Some(Screen::Check))
                }
                Err(e) => app.call_failed(&e),
            },
        );
    }

    // --- problems ---

    /// Tells the visitor what went wrong with a call, by its error name.
    fn call_failed(self: &Rc<Self>, e: &zbus::Error) {
        use ErrorName as N;
        let (name, msg) = gated::error_name(e);
        eprintln!("kiosk: {name:?}: {msg}");
        let (p, then) = match name {
            N::SoldOut => (Problem::SoldOut, Some(Screen::Buy)),
            N::PaymentDeclined => (Problem::PaymentDeclined, Some(Screen::Confirm)),
            N::Offline => (Problem::Offline, None),
            N::NotProvisioned | N::NotAvailable | N::PrinterOutOfPaper | N::PrinterNotReady => {
                (Problem::OutOfService, None)
            }
            N::NotFound => (Problem::NotFound, Some(Screen::Collect)),
            N::AlreadyPrinted => (Problem::AlreadyPrinted, None),
            N::NotRunning | N::Bus => (Problem::Unavailable, None),
            _ => (Problem::Failed, None),
        };
        self.problem(p, "", then);
    }

    fn problem(self: &Rc<Self>, p: Problem, detail: &str, then: Option<Screen>) {
        self.state.borrow_mut().problem_then = then;
        let g = self.g();
        g.set_problem(p);
        g.set_problem_detail(detail.into());
        self.show(Screen::Problem);
    }

    fn problem_action(self: &Rc<Self>) {
        let then = self.state.borrow_mut().problem_then.take();
        match then {
            // Sold out: the quotas changed, ask again for the same date.
            Some(Screen::Buy) => {
                let date = {
                    let st = self.state.borrow();
                    st.sale.dates.get(st.sale.date).map(|d| d.to_string())
                };
                self.load_catalog(date.unwrap_or_default());
            }
            Some(Screen::Home) => self.start_buy(),
            Some(s) => self.show(s),
            None => self.go_home(),
        }
    }

    // --- keypads ---

    fn key(self: &Rc<Self>, k: &str) {
        let edit = |s: &mut String, max: usize| match k {
            "back" => {
                s.pop();
            }
            "clear" => s.clear(),
            d if d.len() == 1 && d.as_bytes()[0].is_ascii_digit() && s.len() < max => s.push_str(d),
            _ => {}
        };
        let g = self.g();
        match self.screen() {
            Screen::Confirm => {
                let mut st = self.state.borrow_mut();
                edit(&mut st.sale.phone, 15);
                g.set_phone(st.sale.phone.as_str().into());
            }
            Screen::CollectNumber => {
                if g.get_entry_field() == 0 {
                    let mut s = g.get_entry_order().to_string();
                    edit(&mut s, 24);
                    g.set_entry_order(s.into());
                } else {
                    let mut s = g.get_entry_phone().to_string();
                    edit(&mut s, 4);
                    g.set_entry_phone(s.into());
                }
            }
            Screen::ServicePin => {
                let mut st = self.state.borrow_mut();
                if k == "enter" {
                    let pin = std::mem::take(&mut st.pin);
                    drop(st);
                    g.set_pin("".into());
                    self.open_service_session(pin);
                    return;
                }
                edit(&mut st.pin, 8);
                g.set_pin("●".repeat(st.pin.len()).into());
            }
            _ => {}
        }
    }

    // --- service menu ---

    /// gated checks the PIN (and counts wrong ones); the right one opens a
    /// session the service methods need.
    fn open_service_session(self: &Rc<Self>, pin: String) {
        self.call(
            |g| async move { g.kiosk.open_service_session(&pin).await },
            |app, r| {
                let g = app.g();
                match r {
                    Ok(token) => {
                        app.state.borrow_mut().service_token = Some(token);
                        g.set_pin_wrong(false);
                        g.set_service_report("".into());
                        app.show(Screen::Service);
                        app.service_refresh();
                    }
                    Err(e) => {
                        let (name, msg) = gated::error_name(&e);
                        if !matches!(name, ErrorName::WrongPin | ErrorName::Locked) {
                            eprintln!("kiosk: service menu: {name:?}: {msg}");
                        }
                        g.set_pin_wrong(true);
                        g.set_service_report(msg.into());
                    }
                }
            },
        );
    }

    fn close_service_session(self: &Rc<Self>) {
        let token = self.state.borrow_mut().service_token.take();
        if let Some(token) = token
            && let Some(g) = self.state.borrow().gated.clone()
        {
            self.spawn(
                async move { g.kiosk.close_service_session(&token).await },
                |_, r| {
                    if let Err(e) = r {
                        eprintln!(
                            "kiosk: closing the service session: {}",
                            gated::error_name(&e).1
                        );
                    }
                },
            );
        }
    }

    fn service_token(&self) -> String {
        self.state
            .borrow()
            .service_token
            .clone()
            .unwrap_or_default()
    }

    fn service_refresh(self: &Rc<Self>) {
        self.call(
            |g| async move {
                let d = &g.device;
                let mut facts = vec![
                    ("kiosk app", env!("CARGO_PKG_VERSION").to_owned()),
                    ("device", d.device_id().await?),
                    ("role", d.role().await?),
                    ("central link", d.mode().await?),
                    ("central URL", d.central_url().await?),
                ];
                let last = d.last_sync_ms().await?;
                facts.push((
                    "last sync",
                    if last == 0 {
                        "never".into()
                    } else {
                        format!("{} s ago", (now_ms() - last) / 1000)
                    },
                ));
                facts.push(("events not uploaded", d.outbox_depth().await?.to_string()));
                facts.push(("clock skew", format!("{} ms", d.clock_skew_ms().await?)));
                facts.push(("power", d.power().await?));
                let reasons = g.kiosk.out_of_service_reasons().await?;
                facts.push((
                    "sale",
                    if reasons.is_empty() {
                        "available".into()
                    } else {
                        format!("blocked: {}", reasons.join(", "))
                    },
                ));
                let mut out: Vec<(String, String)> =
                    facts.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                out.extend(d.devices().await?);
                Ok(out)
            },
            |app, r| match r {
                Ok(facts) => app.g().set_facts(model(
                    facts
                        .into_iter()
                        .map(|(k, v)| Fact {
                            key: k.into(),
                            value: v.into(),
                        })
                        .collect(),
                )),
                Err(e) => app
                    .g()
                    .set_service_report(SharedString::from(gated::error_name(&e).1)),
            },
        );
    }

    fn service_test_print(self: &Rc<Self>) {
        let token = self.service_token();
        self.call(
            |g| async move { g.kiosk.service_test_print(&token).await },
            |app, r| {
                let text = match r {
                    Ok((true, report)) => format!("PASS: {report}"),
                    Ok((false, report)) => format!("FAIL: {report}"),
                    Err(e) => format!("FAIL: {}", gated::error_name(&e).1),
                };
                app.g().set_service_report(text.into());
                app.service_refresh();
            },
        );
    }

    fn service_sync(self: &Rc<Self>) {
        let token = self.service_token();
        self.call(
            |g| async move { g.kiosk.service_sync_now(&token).await },
            |app, r| {
                let text = match r {
                    Ok(()) => "sync requested: the link reconnects now".to_owned(),
                    Err(e) => format!("FAIL: {}", gated::error_name(&e).1),
                };
                app.g().set_service_report(text.into());
            },
        );
    }
}
