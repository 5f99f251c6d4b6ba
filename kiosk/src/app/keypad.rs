//! The on-screen keypads: phone number, order number and phone digits, the
//! service PIN.

use super::*;

impl App {
    pub(super) fn key(self: &Rc<Self>, k: &str) {
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
            Screen::Setup => {
                if k == "enter" {
                    self.setup_submit();
                    return;
                }
                let mut s = g.get_setup_code().to_string();
                edit(&mut s, 16);
                g.set_setup_code(s.into());
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
}
