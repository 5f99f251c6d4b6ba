//! Binds the screens to gated: every tap becomes a D-Bus call, every answer
//! and signal a change of what the screen shows. The rules (prices,
//! quotas, payment, printing) are gated's; this only follows docs/dbus.md
//! ("A sale, step by step").
//!
//! D-Bus runs on a tokio thread. Its answers come back as jobs on a channel
//! that the UI thread drains (`pump`): the event loop is woken for them in
//! the app, and tests drain it themselves.

mod buy;
mod collect;
mod keypad;
mod link;
mod pay;
mod print;
mod service;
mod setup;

pub use setup::health_rows;

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
    /// gated waits for the device's setup (Kiosk1.NeedsSetup).
    needs_setup: bool,
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
        {
            let (g, hw) = (app.g(), &app.config.hardware);
            g.set_place_id_reader(hw.id_reader.as_str().into());
            g.set_place_scanner(hw.scanner.as_str().into());
            g.set_place_payment(hw.payment().into());
            g.set_place_ticket_slot(hw.ticket_slot.as_str().into());
        }
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
        on!(on_toggle_large_text, |app| {
            let g = app.g();
            g.set_large_text(!g.get_large_text());
        });
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
        on!(on_service_enroll_again, |app, step| app
            .service_enroll_again(&step));
        on!(on_setup_submit, |app| app.setup_submit());
        on!(on_setup_finish, |app| app.setup_finish());
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
            // Large text is one visitor's: gone when they are.
            Screen::Home => self.g().set_large_text(false),
            // Never while paying (the order's own deadline ends it) or
            // printing, nor while an engineer sets the device up.
            Screen::Pay | Screen::Printing | Screen::SetupResult => {}
            Screen::Setup if !self.g().get_setup_again() => {}
            _ if self.g().get_busy() => self.touched(),
            _ => {
                self.go_home();
                self.g().set_large_text(false);
            }
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
        // A visit that ended (tickets out, a ticket checked) ends large text;
        // a visitor going back home to choose again keeps it.
        if matches!(self.screen(), Screen::Done | Screen::CheckResult) {
            g.set_large_text(false);
        }
        g.set_order_no("".into());
        g.set_show_calendar(false);
        g.set_problem_detail("".into());
        self.set_language(&self.config.language.clone());
        g.set_confirm_enroll_again(false);
        g.set_setup_again(false);
        self.show(Screen::Home);
        self.idle.stop();
        // Not enrolled: the setup screen is the home screen.
        let needs_setup = self.state.borrow().needs_setup;
        if needs_setup {
            self.set_needs_setup(true);
        }
    }

    // --- signals ---

    fn code_scanned(self: &Rc<Self>, code: String) {
        self.touched();
        match self.screen() {
            Screen::Setup => self.enroll(code),
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

    fn id_card_read(self: &Rc<Self>, handle: String, card: IdCard) {
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
                    v.push(card);
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
}
