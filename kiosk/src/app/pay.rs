//! Paying: the QR to show or a scanned payment code, the countdown, the
//! order's status until paid, expired or cancelled (ui/screens/sale.slint).

use super::*;

impl App {
    pub(super) fn show_payment(self: &Rc<Self>, order: gated::Order, qr: &str, expires_at_ms: i64) {
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

    pub(super) fn tick_countdown(self: &Rc<Self>) {
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

    pub(super) fn stop_payment_timers(&self) {
        self.countdown.stop();
        self.pay_deadline.stop();
        self.poll.stop();
    }

    pub(super) fn order_no(&self) -> Option<String> {
        self.state
            .borrow()
            .sale
            .order
            .as_ref()
            .map(|o| o.order_no.clone())
    }

    /// Asks gated for the order's status (which also stores a QR payment).
    pub(super) fn poll_order(self: &Rc<Self>) {
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

    pub(super) fn pay_with_code(self: &Rc<Self>, code: String) {
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

    pub(super) fn cancel_payment(self: &Rc<Self>) {
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

    pub(super) fn check_after_not_payable(self: &Rc<Self>) {
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

    pub(super) fn payment_ended(self: &Rc<Self>) {
        self.stop_payment_timers();
        self.state.borrow_mut().sale.order = None;
        self.problem(Problem::PaymentExpired, "", Some(Screen::Home));
    }

    pub(super) fn paid(self: &Rc<Self>) {
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
}
