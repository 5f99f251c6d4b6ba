//! Pickup of paid orders by order QR, ID card, or order number and phone.

use super::*;

impl Kiosk {
    /// Paid orders for pickup: by `order_code` (scanned QR), by `id` (an ID
    /// handle), or by `phone` (order number + last four digits).
    pub async fn pickup(
        &self,
        by: &str,
        value: &str,
        phone_suffix: &str,
    ) -> Result<Vec<PickupView>, KioskError> {
        let (query, local): (Vec<(&str, String)>, Vec<String>) = match by {
            "order_code" if !value.is_empty() => (vec![("order_code", value.to_owned())], {
                let v = value.to_owned();
                self.read(move |s| Ok(orders::find_by_code(s.conn_ref(), &v)?))
                    .await?
            }),
            "id" => {
                let hash = self.holder(value)?;
                (
                    vec![("id_hash", hex::encode(hash))],
                    self.read(move |s| Ok(orders::find_by_holder(s.conn_ref(), &hash)?))
                        .await?,
                )
            }
            "phone"
                if phone_suffix.len() == 4 && phone_suffix.bytes().all(|b| b.is_ascii_digit()) =>
            {
                (
                    vec![
                        ("order_no", value.to_owned()),
                        ("phone_suffix", phone_suffix.to_owned()),
                    ],
                    {
                        let (v, p) = (value.to_owned(), phone_suffix.to_owned());
                        self.read(move |s| Ok(orders::find_by_phone(s.conn_ref(), &v, &p)?))
                            .await?
                    },
                )
            }
            _ => {
                return Err(E::InvalidArgument(
                    "pickup by order_code, id (an ID handle), or phone (order number + 4 digits)"
                        .into(),
                ));
            }
        };
        let mut numbers = local;
        // Online: the central system may know orders this kiosk has not seen yet.
        if let Ok(session) = self.session() {
            match session
                .get::<api::Pickup>(paths::PICKUP, &query, CALL_TIMEOUT)
                .await
            {
                Ok(found) => {
                    for o in &found.orders {
                        if !numbers.contains(&o.order_no) {
                            numbers.push(o.order_no.clone());
                        }
                    }
                    self.write(move |s, nonces| {
                        Ok(s.in_transaction(|tx| {
                            found
                                .orders
                                .iter()
                                .try_for_each(|o| orders::upsert(tx, o, now_ms(), false, nonces))
                        })?)
                    })
                    .await?;
                }
                Err(e) if e.is_transient() => tracing::info!("pickup from the local copy: {e}"),
                Err(e) => return Err(central_error(e)),
            }
        }
        self.read(move |s| {
            let conn = s.conn_ref();
            let mut out = Vec::new();
            for no in numbers {
                if let Some(o) = orders::get(conn, &no)? {
                    let tickets = orders::tickets(conn, &no)?;
                    out.push(PickupView {
                        order_no: no,
                        date: o.date,
                        tickets: tickets.len() as u32,
                        unprinted: tickets.iter().filter(|(_, p)| p.is_none()).count() as u32,
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}
