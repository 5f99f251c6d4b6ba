//! Buying: the catalog for a date, quantities, ID cards for real-name
//! tickets, the order (ui/screens/buy.slint).

use super::*;

impl App {
    pub(super) fn start_buy(self: &Rc<Self>) {
        self.state.borrow_mut().sale = Sale::default();
        self.load_catalog(String::new());
    }

    pub(super) fn load_catalog(self: &Rc<Self>, date: String) {
        self.call(
            move |g| async move {
                // One round trip's wait: the three go out together.
                let (c, max, days) = tokio::join!(
                    g.kiosk.catalog(&date),
                    g.kiosk.max_quantity(),
                    g.kiosk.sale_horizon_days()
                );
                Ok((c?, (max?, days?)))
            },
            |app, r| match r {
                Ok((c, limits)) => app.show_catalog(c, limits),
                Err(e) => app.call_failed(&e),
            },
        );
    }

    /// `limits`: (tickets per line, days on sale), as gated enforces them.
    pub(super) fn show_catalog(self: &Rc<Self>, c: gated::CatalogView, limits: (u32, u32)) {
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

    pub(super) fn show_rows(&self) {
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

    pub(super) fn choose_date(self: &Rc<Self>, i: usize) {
        let date = self.state.borrow().sale.dates.get(i).map(|d| d.to_string());
        if let Some(date) = date {
            self.load_catalog(date);
        }
    }

    pub(super) fn step(&self, row: usize, delta: i32) {
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
    pub(super) fn buy_next(self: &Rc<Self>) {
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

    pub(super) fn create_order(self: &Rc<Self>) {
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
}
