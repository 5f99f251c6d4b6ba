//! Printing a paid order's tickets, one order after another, with progress
//! (ui/screens/sale.slint).

use super::*;

impl App {
    /// Prints the orders one after the other; `total` tickets in all.
    pub(super) fn print(self: &Rc<Self>, orders: Vec<String>, total: i32) {
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

    pub(super) fn print_next(self: &Rc<Self>) {
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
}
