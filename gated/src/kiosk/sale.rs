//! Selling: the catalog for a date with the quota left, and orders within
//! the sale limits (quantity, the horizon, ID cards for real-name tickets).

use super::*;

impl Kiosk {
    /// A date tickets are sold for: from today to the horizon's last day.
    pub(super) fn check_sale_date(&self, date: jiff::civil::Date) -> Result<(), KioskError> {
        let today = self.today_date();
        let days = i64::from(self.limits.sale_horizon_days);
        let last = today
            .checked_add(jiff::Span::new().days(days - 1))
            .unwrap_or(jiff::civil::Date::MAX);
        if date < today {
            return Err(E::InvalidArgument(format!(
                "{date} is in the past (today is {today} in the scenic area)"
            )));
        }
        if date > last {
            return Err(E::InvalidArgument(format!(
                "tickets are sold at most {days} days ahead: {date} is after {last}"
            )));
        }
        let occupancy = self.occupancy.borrow();
        if date == today && occupancy.sales_stopped {
            return Err(E::SoldOut(format!(
                "no more tickets for today: the park is at {} % of its capacity; \
                 tickets for later dates still sell / 今日门票暂停销售",
                occupancy.site.percent
            )));
        }
        Ok(())
    }

    /// Products, prices and remaining quota per slot for a date ("" = today).
    pub async fn catalog(&self, date: &str) -> Result<CatalogView, KioskError> {
        let date = if date.is_empty() {
            self.today()
        } else {
            Self::parse_date(date)?.to_string()
        };
        let catalog = self.catalog_stored().await?;
        let availability: Option<api::Availability> = match self.session() {
            Ok(s) => Some(
                s.get(paths::AVAILABILITY, &[("date", date.clone())], CALL_TIMEOUT)
                    .await
                    .map_err(central_error)?,
            ),
            Err(_) => None,
        };
        let reasons = self.sale_blockers();
        Ok(CatalogView {
            scenic_area: catalog.scenic_area,
            date,
            sale_available: reasons.is_empty(),
            reasons,
            products: catalog
                .products
                .iter()
                .map(|p| ProductView {
                    id: p.id,
                    name: p.name.clone(),
                    name_en: p.name_en.clone(),
                    price_cents: p.price_cents,
                    real_name: p.real_name,
                    id_cards_per_ticket: u32::from(p.real_name),
                    slots: p
                        .slots
                        .iter()
                        .map(|s| SlotView {
                            start_minute: s.start_minute,
                            end_minute: s.end_minute,
                            remaining: availability.as_ref().and_then(|a| {
                                a.slots
                                    .iter()
                                    .find(|q| {
                                        q.product_id == p.id && q.start_minute == s.start_minute
                                    })
                                    .map(|q| q.remaining)
                            }),
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    /// Creates an order: `items` are (product, slot start minute, quantity);
    /// real-name items take one ID handle per ticket, in order.
    pub async fn create_order(
        &self,
        date: &str,
        items: &[(u32, u16, u16)],
        id_handles: &[String],
        phone: &str,
        group: bool,
    ) -> Result<Order, KioskError> {
        let date = Self::parse_date(date)?;
        self.check_sale_date(date)?;
        let date = date.to_string();
        if items.is_empty() {
            return Err(E::InvalidArgument(
                "an order needs at least one item".into(),
            ));
        }
        if !phone.is_empty() && (phone.len() < 4 || !phone.bytes().all(|b| b.is_ascii_digit())) {
            return Err(E::InvalidArgument("a phone number is digits only".into()));
        }
        let catalog = self.catalog_stored().await?;
        let mut handles = id_handles.iter();
        let mut out = Vec::new();
        for &(product_id, start_minute, quantity) in items {
            let p = catalog
                .products
                .iter()
                .find(|p| p.id == product_id)
                .ok_or_else(|| E::InvalidArgument(format!("no product {product_id}")))?;
            let max = self.limits.max_quantity;
            if quantity == 0 || quantity > max {
                return Err(E::InvalidArgument(format!("quantity must be 1 to {max}")));
            }
            if group && p.real_name {
                return Err(E::InvalidArgument(format!(
                    "{} / {} is sold per person (real name): no group ticket",
                    p.name, p.name_en
                )));
            }
            let mut holders = Vec::new();
            if p.real_name {
                for _ in 0..quantity {
                    let h = handles.next().ok_or_else(|| {
                        E::InvalidArgument(format!(
                            "{} / {} needs one ID card per ticket",
                            p.name, p.name_en
                        ))
                    })?;
                    holders.push(hex::encode(self.holder(h)?));
                }
            }
            out.push(api::OrderItem {
                product_id,
                start_minute,
                quantity,
                holders,
                group,
            });
        }
        if let Some(reason) = self.sale_blockers().first() {
            return Err(match reason.as_str() {
                "printer_out_of_paper" => {
                    E::PrinterOutOfPaper("printer out of paper: no sale".into())
                }
                "printer_not_ready" => E::PrinterNotReady("printer not ready: no sale".into()),
                "offline" => E::Offline("the central system is unreachable: no sale".into()),
                "no_catalog" => {
                    E::NotProvisioned("no catalog received from the central system yet".into())
                }
                "power_fallback" => {
                    E::NotAvailable("mains power is lost: no sale until it is back".into())
                }
                "fire_alarm" => E::NotAvailable("fire alarm: no sale until it ends".into()),
                _ => E::NotProvisioned("this kiosk is not enrolled".into()),
            });
        }
        let session = self.session()?;
        let request = api::CreateOrder {
            client_ref: identity::random_hex(12),
            date,
            items: out,
            phone: (!phone.is_empty()).then(|| phone.to_owned()),
        };
        let order: Order = session
            .post(paths::ORDERS, &request)
            .await
            .map_err(central_error)?;
        self.save_order(&order, true).await?;
        Ok(order)
    }
}
