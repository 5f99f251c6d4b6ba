//! The setup screen of a kiosk that is not enrolled (ui/screens/setup.slint),
//! enrolling again from the service menu, and the health lines both show.

use super::*;
use crate::HealthRow;

/// gated's health summary as the screens' rows.
pub fn health_rows(h: &gated_api::types::HealthView) -> Vec<HealthRow> {
    h.items
        .iter()
        .map(|i| HealthRow {
            level: i.level.as_str().into(),
            name: i.subsystem.as_str().into(),
            name_zh: i.name_zh.as_str().into(),
            detail: i.detail.as_str().into(),
            check_en: i.check_en.as_str().into(),
            check_zh: i.check_zh.as_str().into(),
        })
        .collect()
}

impl App {
    /// gated says whether the device waits for its setup: the setup screen
    /// replaces the attract screen until it is enrolled.
    pub(super) fn set_needs_setup(self: &Rc<Self>, needed: bool) {
        self.state.borrow_mut().needs_setup = needed;
        let screen = self.screen();
        if needed && screen == Screen::Home {
            let g = self.g();
            g.set_setup_again(false);
            g.set_setup_code("".into());
            g.set_setup_report("".into());
            self.show(Screen::Setup);
            self.idle.stop();
        } else if !needed && screen == Screen::Setup && !self.g().get_setup_again() {
            // Enrolled some other way (gatectl): nothing left to set up here.
            self.go_home();
        }
    }

    pub(super) fn setup_submit(self: &Rc<Self>) {
        let code = self.g().get_setup_code().to_string();
        self.enroll(code);
    }

    /// Enrolls with a scanned setup code or the typed pairing code.
    pub(super) fn enroll(self: &Rc<Self>, code: String) {
        let again = self.g().get_setup_again();
        let token = self.service_token();
        self.g().set_setup_report("".into());
        self.call(
            move |g| async move {
                if again {
                    g.kiosk.service_provision(&token, &code).await
                } else {
                    g.kiosk.setup(&code).await
                }
            },
            |app, r| {
                let g = app.g();
                match r {
                    Ok(result) => {
                        g.set_setup_code("".into());
                        g.set_setup_device(result.device_id.as_str().into());
                        g.set_setup_site(result.site.as_str().into());
                        g.set_setup_central(result.central_url.as_str().into());
                        g.set_health_level(result.health.level.as_str().into());
                        g.set_health(model(health_rows(&result.health)));
                        // The sale state changed: the catalog names the area again.
                        app.state.borrow_mut().name_asked = false;
                        app.close_service_session();
                        g.set_setup_again(false);
                        app.show(Screen::SetupResult);
                        app.idle.stop();
                    }
                    // gated's words: why (in the engineer's language when it has them).
                    Err(e) => {
                        let (name, msg) = gated::error_name(&e);
                        eprintln!("kiosk: setup refused: {name:?}: {msg}");
                        g.set_setup_report(msg.into());
                    }
                }
            },
        );
    }

    pub(super) fn setup_finish(self: &Rc<Self>) {
        self.g().set_health(model(Vec::new()));
        self.go_home();
        self.show_reasons();
    }

    /// The service menu's "Enroll again": asked first, then the setup
    /// screen with the PIN's session.
    pub(super) fn service_enroll_again(self: &Rc<Self>, step: &str) {
        let g = self.g();
        match step {
            "ask" => g.set_confirm_enroll_again(true),
            "yes" => {
                g.set_confirm_enroll_again(false);
                g.set_setup_again(true);
                g.set_setup_code("".into());
                g.set_setup_report("".into());
                self.show(Screen::Setup);
            }
            _ => {
                g.set_confirm_enroll_again(false);
                // Back from the setup screen to the service menu.
                if self.screen() == Screen::Setup {
                    g.set_setup_again(false);
                    self.show(Screen::Service);
                }
            }
        }
    }
}
