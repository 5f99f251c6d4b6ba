//! The link to gated: connecting (again), following its signals and
//! properties, and what the home screen says about them.

use super::*;

impl App {
    pub(super) fn connect(self: &Rc<Self>) {
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
    pub(super) fn follow(self: &Rc<Self>, g: Gated) {
        let post = self.post();
        let k = g.kiosk.clone();
        let d = g.device.clone();
        let show_occupancy = self.config.show_occupancy;
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
            // The visitors inside are Device1's: followed too when shown.
            let mut occupancy_changed = match show_occupancy {
                true => props
                    .receive_properties_changed_with_args(&[(0, d.inner().interface().as_str())])
                    .await
                    .ok(),
                false => None,
            };
            loop {
                let avail = k.sale_available().await;
                let reasons = k.out_of_service_reasons().await;
                let state = match (avail, reasons) {
                    (Ok(_), Ok(r)) => Some(r),
                    _ => None,
                };
                // An older gated has no notice: none is shown.
                let notice = k.visitor_notice().await.unwrap_or_default();
                let needs_setup = k.needs_setup().await.unwrap_or(false);
                let visitors = match show_occupancy {
                    true => d
                        .occupancy()
                        .await
                        .ok()
                        .map(|o| (o.site.inside, o.site.instant_capacity)),
                    false => None,
                };
                post(Box::new(move |app: &Rc<App>| {
                    app.set_reasons(state);
                    app.set_notice(notice);
                    app.set_visitors(visitors);
                    app.set_needs_setup(needs_setup);
                }));
                let occupancy = async {
                    match &mut occupancy_changed {
                        Some(s) => s.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = owner.next() => {}
                    m = props_changed.next() => if m.is_none() { return },
                    m = changes.next() => if m.is_none() { return },
                    m = occupancy => if m.is_none() { return },
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
            let card = IdCard {
                name: a.name_masked.as_str().into(),
                number: a.number_masked.as_str().into(),
                kind: a.kind.as_str().into(),
            };
            let h = a.handle.clone();
            Some(Box::new(move |app: &Rc<App>| app.id_card_read(h, card)))
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
    pub(super) fn set_reasons(self: &Rc<Self>, reasons: Option<Vec<String>>) {
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
                match r {
                    Ok(c) => app.g().set_scenic_area(c.scenic_area.into()),
                    // No catalog yet: ask again at the next change.
                    Err(_) => app.state.borrow_mut().name_asked = false,
                }
            });
        }
    }

    /// Visitors in the park now and the capacity (0: none set), when the
    /// home screen shows them; `None` hides the line (not known).
    pub(super) fn set_visitors(&self, visitors: Option<(u64, Option<u32>)>) {
        let g = self.g();
        g.set_show_occupancy(visitors.is_some());
        if let Some((inside, capacity)) = visitors {
            g.set_visitors_inside(inside.min(i32::MAX as u64) as i32);
            g.set_visitors_capacity(capacity.unwrap_or(0).min(i32::MAX as u32) as i32);
        }
    }

    /// The park's occupancy notice (zh, en), shown on the home screen.
    pub(super) fn set_notice(&self, (zh, en): (String, String)) {
        let g = self.g();
        g.set_notice_zh(zh.into());
        g.set_notice_en(en.into());
    }

    pub(super) fn show_reasons(&self) {
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
}
