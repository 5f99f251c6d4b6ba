//! The service menu behind the PIN gated checks (ui/screens/service.slint).

use super::*;

impl App {
    /// gated checks the PIN (and counts wrong ones); the right one opens a
    /// session the service methods need.
    pub(super) fn open_service_session(self: &Rc<Self>, pin: String) {
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

    pub(super) fn close_service_session(self: &Rc<Self>) {
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

    pub(super) fn service_token(&self) -> String {
        self.state
            .borrow()
            .service_token
            .clone()
            .unwrap_or_default()
    }

    pub(super) fn service_refresh(self: &Rc<Self>) {
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
                // An older gated has no health summary: the facts remain.
                let health = d.health().await.ok();
                Ok((out, health))
            },
            |app, r| match r {
                Ok((facts, health)) => {
                    let rows = health.as_ref().map(super::health_rows).unwrap_or_default();
                    app.g().set_health(model(rows));
                    app.g().set_facts(model(
                        facts
                            .into_iter()
                            .map(|(k, v)| Fact {
                                key: k.into(),
                                value: v.into(),
                            })
                            .collect(),
                    ))
                }
                Err(e) => app
                    .g()
                    .set_service_report(SharedString::from(gated::error_name(&e).1)),
            },
        );
    }

    pub(super) fn service_test_print(self: &Rc<Self>) {
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

    pub(super) fn service_sync(self: &Rc<Self>) {
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
