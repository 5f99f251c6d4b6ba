//! The kiosk app driven like a visitor drives it: its real screens (Slint's
//! testing backend: no display) and its real D-Bus client, against a
//! [`Kiosk`] device (gated, central-sim, printer/scanner/ID simulators on a
//! private bus). Taps are accessibility actions on the elements a visitor
//! would touch, found by their labels (English).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use i_slint_backend_testing::{ElementHandle, ElementQuery};
use kiosk::app::App;
use kiosk::config::Config;
use kiosk::{AppWindow, Problem, Screen, Ui};
use slint::{ComponentHandle, Model};

use crate::kiosk_device::Kiosk;

/// Generous: it bounds a hang, it does not measure.
pub const BOUND: Duration = Duration::from_secs(60);

pub use crate::kiosk_device::SERVICE_PIN as PIN;

pub struct Screens {
    pub rt: tokio::runtime::Runtime,
    pub k: Kiosk,
    pub app: Rc<App>,
}

impl std::fmt::Debug for Screens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screens").field("k", &self.k).finish()
    }
}

impl Screens {
    /// A kiosk device ready to sell and the app on its home screen, in English.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// The same, with `extra` sections in the device's gated.toml.
    pub fn start_with(extra: &str) -> Self {
        Self::start_with_config(
            extra,
            Config {
                language: "en".into(),
                ..Config::default()
            },
        )
    }

    /// The same, with the app's own settings (kiosk.toml) too.
    pub fn start_with_config(extra: &str, config: Config) -> Self {
        let s = Self::open(config, |rt| rt.block_on(Kiosk::start_with(extra)));
        s.wait("the home screen to allow a sale", |s| s.g().get_can_sell());
        s
    }

    /// A kiosk device not enrolled yet, and the app on its setup screen.
    pub fn start_unenrolled() -> Self {
        let s = Self::open(
            Config {
                language: "en".into(),
                ..Config::default()
            },
            |rt| rt.block_on(Kiosk::start_unenrolled()),
        );
        s.wait_screen(Screen::Setup);
        s
    }

    fn open(config: Config, device: impl FnOnce(&tokio::runtime::Runtime) -> Kiosk) -> Self {
        i_slint_backend_testing::init_no_event_loop();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let k = device(&rt);
        let ui = AppWindow::new().unwrap();
        // No event loop here: the test pumps the app's jobs itself.
        let app = App::new(
            ui,
            config,
            Some(k.bus.address.clone()),
            rt.handle().clone(),
            Arc::new(|| {}),
        );
        // The portrait panel: what is off screen cannot be tapped.
        app.ui()
            .window()
            .set_size(slint::PhysicalSize::new(1080, 1920));
        app.ui().show().unwrap();
        Screens { rt, k, app }
    }

    pub fn g(&self) -> Ui<'_> {
        self.app.ui().global::<Ui>()
    }

    pub fn screen(&self) -> Screen {
        self.g().get_screen()
    }

    /// Runs the app's jobs until `f` holds.
    pub fn wait(&self, what: &str, f: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + BOUND;
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "waited {BOUND:?} for {what}; on screen {:?} (problem {:?}: {})",
                self.screen(),
                self.g().get_problem(),
                self.g().get_problem_detail()
            );
            self.app.pump_wait(Duration::from_millis(50));
        }
    }

    pub fn wait_screen(&self, screen: Screen) {
        self.wait(&format!("screen {screen:?}"), |s| {
            s.screen() == screen && !s.g().get_busy()
        });
    }

    /// Waits for the problem screen showing `p`.
    pub fn wait_problem(&self, p: Problem) {
        self.wait_screen(Screen::Problem);
        assert_eq!(self.g().get_problem(), p);
    }

    fn find(&self, label: &str) -> ElementHandle {
        let mut all: Vec<ElementHandle> =
            ElementHandle::find_by_accessible_label(self.app.ui(), label).collect();
        // A button's own text is labelled like the button: the button is meant.
        if all.len() > 1 {
            all.retain(|e| {
                e.accessible_role() != Some(i_slint_backend_testing::AccessibleRole::Text)
            });
        }
        match all.as_slice() {
            [one] => one.clone(),
            [] => {
                let seen: Vec<String> = ElementQuery::from_root(self.app.ui())
                    .match_descendants()
                    .find_all()
                    .iter()
                    .filter_map(|e| e.accessible_label())
                    .filter(|l| !l.is_empty())
                    .map(|l| l.to_string())
                    .collect();
                panic!(
                    "nothing labelled {label:?} on screen {:?}; labels: {seen:?}",
                    self.screen()
                )
            }
            many => panic!(
                "{} elements labelled {label:?} on screen {:?}",
                many.len(),
                self.screen()
            ),
        }
    }

    /// From a chosen cart on the buy screen to the payment screen: Next,
    /// Pay; the order's number.
    pub fn checkout(&self) -> String {
        self.tap("Next");
        self.wait_screen(Screen::Confirm);
        self.tap("Pay");
        self.wait_screen(Screen::Pay);
        self.g().get_order_no().to_string()
    }

    /// The height of the element labelled `label`, in logical pixels.
    pub fn height_of(&self, label: &str) -> f32 {
        self.find(label).size().height
    }

    /// Whether some text on screen contains `text`.
    pub fn shows(&self, text: &str) -> bool {
        ElementQuery::from_root(self.app.ui())
            .match_descendants()
            .find_all()
            .iter()
            .any(|e| e.accessible_label().is_some_and(|l| l.contains(text)))
    }

    /// Whether the element labelled `label` is there and can be tapped.
    pub fn enabled(&self, label: &str) -> bool {
        self.find(label).accessible_enabled() != Some(false)
    }

    /// Taps the element labelled `label` (it must be enabled).
    pub fn tap(&self, label: &str) {
        let e = self.find(label);
        assert_ne!(
            e.accessible_enabled(),
            Some(false),
            "{label:?} is disabled on screen {:?}",
            self.screen()
        );
        e.invoke_accessible_default_action();
    }

    /// Types digits on the on-screen keypad.
    pub fn type_digits(&self, digits: &str) {
        for d in digits.chars() {
            self.tap(&d.to_string());
        }
    }

    /// Advances Slint's clock (timers: polling, timeouts); no real waiting.
    pub fn advance(&self, d: Duration) {
        i_slint_backend_testing::mock_elapsed_time(d);
    }

    /// The sale rows shown: (English name, slot, quantity, max).
    pub fn rows(&self) -> Vec<(String, String, i32, i32)> {
        self.g()
            .get_rows()
            .iter()
            .map(|r| (r.name_en.to_string(), r.slot.to_string(), r.quantity, r.max))
            .collect()
    }

    /// Taps "+" `n` times on the row of `name_en` in `slot` ("" = all day).
    pub fn add(&self, name_en: &str, slot: &str, n: usize) {
        let slot = if slot.is_empty() { "All day" } else { slot };
        for _ in 0..n {
            self.tap(&format!("One more: {name_en} {slot}"));
        }
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}
