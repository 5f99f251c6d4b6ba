//! Collecting tickets bought elsewhere (order QR, ID card, order number and
//! phone) and checking a ticket (ui/screens/collect.slint).

use super::*;

impl App {
    pub(super) fn pickup(self: &Rc<Self>, by: &'static str, value: String, suffix: String) {
        self.call(
            move |g| async move { g.kiosk.pickup(by, &value, &suffix).await },
            move |app, r| match r {
                Ok(found) if found.is_empty() => {
                    app.problem(Problem::NotFound, "", Some(Screen::Collect))
                }
                Ok(found) => {
                    let unprinted: u32 = found.iter().map(|o| o.unprinted).sum();
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

    pub(super) fn collect_print(self: &Rc<Self>) {
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

    pub(super) fn query(self: &Rc<Self>, code: String) {
        self.call(
            move |g| async move { g.kiosk.query(&code).await },
            |app, r| match r {
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
}
