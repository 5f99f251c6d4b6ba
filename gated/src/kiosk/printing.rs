//! Printing: the ticket layout, the paid order's tickets each marked before
//! the first byte and after the cut, reprints and the test slip.

use super::*;

impl Kiosk {
    pub(super) fn ticket_bytes(
        &self,
        scenic_area: &str,
        order: &Order,
        t: &api::IssuedTicket,
        product: Option<&api::Product>,
    ) -> Result<Vec<u8>, KioskError> {
        let (name, name_en) = product.map_or(("门票", "Ticket"), |p| {
            (p.name.as_str(), p.name_en.as_str())
        });
        // Fullwidth yuan sign: GBK has no U+00A5.
        let yuan = format!("￥{}.{:02}", t.price_cents / 100, t.price_cents % 100);
        let (from, until) = (
            t.valid_from.get(11..).unwrap_or(""),
            t.valid_until.get(11..).unwrap_or(""),
        );
        let time = if from == "00:00" && until == "00:00" {
            "全天 All day".to_owned()
        } else {
            format!("{from}–{until}")
        };
        let b = TicketBuilder::new()
            .align(Align::Center)
            .bold(true)
            .size(2, 2)
            .line(scenic_area)
            .size(1, 1)
            .line(&format!("{name} {name_en}"))
            .bold(false)
            .line(&format!(
                "日期 Date  {}",
                t.valid_from.get(..10).unwrap_or(&t.valid_from)
            ))
            .line(&format!("时段 Time  {time}"))
            .line(&format!("票价 Price {yuan}"));
        let b = if t.group_size > 1 {
            b.bold(true)
                .line(&format!("团体票 Group ticket: {} 人 persons", t.group_size))
                .bold(false)
        } else {
            b
        };
        let b = b
            .qr(&t.token, 6, QrEcc::M)
            .map_err(|e| E::Failed(format!("ticket {}: {e}", t.ticket_id)))?
            .line(&format!("订单 Order  {}", order.order_no))
            .line(&format!("票号 Serial {}", t.serial))
            .feed(3);
        Ok(b.cut())
    }

    /// Prints every ticket of a paid order not printed here yet; returns how
    /// many were printed. On a printer problem the rest stay printable.
    pub async fn print(&self, order_no: &str) -> Result<u32, KioskError> {
        let no = order_no.to_owned();
        let (order, held, tickets) = self
            .read(move |s| {
                let c = s.conn_ref();
                Ok((
                    orders::get(c, &no)?,
                    orders::held_mid_print(c, &no)?,
                    orders::tickets(c, &no)?,
                ))
            })
            .await?;
        let order =
            order.ok_or_else(|| E::NotFound(format!("no paid order {order_no} on this kiosk")))?;
        if order.status != OrderStatus::Paid {
            return Err(E::NotPayable(format!("order {order_no} is not paid")));
        }
        let todo: Vec<api::IssuedTicket> = tickets
            .into_iter()
            .filter(|(t, printed)| printed.is_none() && !held.contains(&t.ticket_id))
            .map(|(t, _)| t)
            .collect();
        if todo.is_empty() && !held.is_empty() {
            return Err(E::AlreadyPrinted(format!(
                "ticket(s) {held:?} of order {order_no} were being printed when gated stopped: \
                 staff check the printer's output and reprint what did not come out"
            )));
        }
        if todo.is_empty() {
            return Err(E::AlreadyPrinted(format!(
                "every ticket of order {order_no} was printed (a reprint needs an engineer)"
            )));
        }
        self.print_tickets(&order, &todo, None).await
    }

    pub(super) async fn print_tickets(
        &self,
        order: &Order,
        todo: &[api::IssuedTicket],
        reprint: Option<(&str, &str)>,
    ) -> Result<u32, KioskError> {
        let catalog = self.catalog_stored().await.ok();
        let scenic = catalog
            .as_ref()
            .map_or("", |c| c.scenic_area.as_str())
            .to_owned();
        let mut guard = self.printer.lock().await;
        // A reboot for an update waits until the tickets are out.
        let _busy = self.activity.begin();
        let printer = guard
            .as_mut()
            .ok_or_else(|| E::PrinterNotReady("this device has no ticket printer".into()))?;
        let mut printed = 0;
        let total = todo.len() as u32;
        let report = |printed| {
            let _ = self.progress.send(PrintProgress {
                order_no: order.order_no.clone(),
                printed,
                total,
            });
        };
        report(0);
        for t in todo {
            let product = catalog
                .as_ref()
                .and_then(|c| c.products.iter().find(|p| p.id == t.product_id));
            let bytes = self.ticket_bytes(&scenic, order, t, product)?;
            // The cut counter, where the printer has one, lets the next start
            // tell whether a ticket held by a crash came out.
            let cuts = printer.cut_count().await.ok().flatten();
            // Durable before the first byte goes out (see the schema, 3).
            let id = t.ticket_id;
            self.write(move |s, _| Ok(orders::print_started(s.conn_ref(), id, now_ms(), cuts)?))
                .await?;
            match printer.print(&bytes).await {
                Ok(status) => {
                    self.printer_status.send_replace(Some(Ok(status)));
                    let at = now_ms();
                    // A first print is one per ticket (keyed); each reprint is its own.
                    let (nonce, event) = match reprint {
                        None => (
                            self.nonces.keyed("print", t.ticket_id),
                            OutboxEvent::Print {
                                order_no: order.order_no.clone(),
                                ticket_id: t.ticket_id,
                                serial: t.serial.clone(),
                            },
                        ),
                        Some((reason, _)) => (
                            self.nonces.next("kiosk"),
                            OutboxEvent::Reprint {
                                order_no: order.order_no.clone(),
                                ticket_id: t.ticket_id,
                                serial: t.serial.clone(),
                                reason: reason.to_owned(),
                            },
                        ),
                    };
                    let reprint = reprint.map(|(r, by)| (r.to_owned(), by.to_owned()));
                    self.write(move |s, _| {
                        Ok(s.in_transaction(|tx| {
                            let reprint = reprint.as_ref().map(|(r, by)| (r.as_str(), by.as_str()));
                            orders::printed(tx, id, at, reprint)?;
                            outbox::queue(tx, &nonce, &event, at).map(|_| ())
                        })?)
                    })
                    .await?;
                    printed += 1;
                    report(printed);
                }
                Err(e) => {
                    // The printer said it printed nothing, or a spoiled
                    // ticket: printable again. Silence or a broken link
                    // leave it held (it may have come out).
                    if matches!(
                        e,
                        PrinterError::NotReady { .. }
                            | PrinterError::Failed { .. }
                            | PrinterError::Open(_)
                    ) {
                        self.write(move |s, _| Ok(orders::print_not_started(s.conn_ref(), id)?))
                            .await?;
                    }
                    if let PrinterError::NotReady { status, .. }
                    | PrinterError::Failed { status, .. } = &e
                    {
                        self.printer_status.send_replace(Some(Ok(*status)));
                    } else {
                        self.printer_status.send_replace(Some(Err(e.to_string())));
                    }
                    tracing::warn!(
                        order = order.order_no,
                        ticket = t.ticket_id,
                        printed,
                        "print stopped: {e}; the rest stay printable"
                    );
                    return Err(printer_error(e));
                }
            }
        }
        Ok(printed)
    }

    /// Decides the ticket a stopped gated left held mid-print, by the
    /// printer's cut counter recorded before its first byte. The counter is
    /// answered in buffer order, so it is read once the printer is through
    /// whatever it still held. Moved by one: the ticket came out (recorded
    /// as printed); not moved: nothing was cut, it prints again when asked;
    /// any other move, no counter or no answer: held for an engineer, as
    /// before. Only the latest held ticket can be decided: the counter has
    /// moved on since any earlier one.
    pub async fn settle_held_prints(&self) -> Result<(), KioskError> {
        let held = self
            .read(|s| Ok(orders::held_prints(s.conn_ref())?))
            .await?;
        let Some(latest) = held.first().cloned() else {
            return Ok(());
        };
        for h in &held[1..] {
            tracing::warn!(
                order = h.order_no,
                ticket = h.ticket_id,
                "ticket held mid-print by an earlier stop: staff check and reprint"
            );
        }
        let Some(before) = latest.cuts_before else {
            tracing::warn!(
                order = latest.order_no,
                ticket = latest.ticket_id,
                "ticket held mid-print, no cut count recorded: staff check the printer's output and reprint"
            );
            return Ok(());
        };
        let mut guard = self.printer.lock().await;
        let Some(printer) = guard.as_mut() else {
            return Ok(());
        };
        let now = match printer.cut_count().await {
            Ok(Some(n)) => n,
            Ok(None) | Err(_) => {
                tracing::warn!(
                    order = latest.order_no,
                    ticket = latest.ticket_id,
                    "ticket held mid-print: the printer gave no cut count now, staff check and reprint"
                );
                return Ok(());
            }
        };
        let (id, order_no) = (latest.ticket_id, latest.order_no.clone());
        match now.wrapping_sub(before) {
            1 => {
                let nonce = self.nonces.keyed("print", id);
                let event = OutboxEvent::Print {
                    order_no: order_no.clone(),
                    ticket_id: id,
                    serial: latest.serial.clone(),
                };
                let at = now_ms();
                self.write(move |s, _| {
                    Ok(s.in_transaction(|tx| {
                        orders::printed(tx, id, at, None)?;
                        outbox::queue(tx, &nonce, &event, at).map(|_| ())
                    })?)
                })
                .await?;
                tracing::info!(
                    order = order_no,
                    ticket = id,
                    cuts_before = before,
                    cuts_now = now,
                    "ticket held mid-print came out (the printer cut once since): recorded as printed"
                );
            }
            0 => {
                self.write(move |s, _| Ok(orders::print_not_started(s.conn_ref(), id)?))
                    .await?;
                tracing::info!(
                    order = order_no,
                    ticket = id,
                    cuts = now,
                    "ticket held mid-print never came out (no cut since): printable again"
                );
            }
            moved => tracing::warn!(
                order = order_no,
                ticket = id,
                cuts_before = before,
                cuts_now = now,
                "ticket held mid-print: the printer cut {moved} times since (another print, or another printer): staff check and reprint"
            ),
        }
        Ok(())
    }

    /// Prints a test slip (not a ticket: no QR token) for the engineer's self-test.
    pub async fn print_test_slip(&self) -> Result<String, KioskError> {
        let slip = TicketBuilder::new()
            .align(Align::Center)
            .bold(true)
            .line("打印测试 PRINTER TEST")
            .bold(false)
            .line("非门票 NOT A TICKET")
            .line(
                &jiff::Timestamp::now()
                    .to_zoned(self.tz.clone())
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string(),
            )
            .feed(3)
            .cut();
        let mut guard = self.printer.lock().await;
        let printer = guard
            .as_mut()
            .ok_or_else(|| E::PrinterNotReady("this device has no ticket printer".into()))?;
        match printer.print(&slip).await {
            Ok(status) => {
                self.printer_status.send_replace(Some(Ok(status)));
                // Known now: the print asked the printer.
                let method = printer
                    .completion()
                    .await
                    .map(|c| c.describe())
                    .unwrap_or("unknown");
                let counter = match printer.cut_count().await {
                    Ok(Some(n)) => {
                        format!("cut counter at {n}: a crash mid-print is settled by it")
                    }
                    _ => "no cut counter: a crash mid-print leaves the ticket for an engineer"
                        .to_owned(),
                };
                Ok(format!(
                    "{}; prints confirmed by {method}; {counter}",
                    status.problem().unwrap_or("ready")
                ))
            }
            Err(e) => Err(printer_error(e)),
        }
    }

    /// Prints a ticket again, with the reason recorded (engineers only).
    pub async fn reprint(&self, ticket_id: u64, reason: &str, by: &str) -> Result<(), KioskError> {
        if reason.trim().len() < 3 {
            return Err(E::InvalidArgument("a reprint needs a reason".into()));
        }
        let (order_no, order, tickets) = self
            .read(move |s| {
                let c = s.conn_ref();
                let Some(no) = orders::order_of_ticket(c, ticket_id)? else {
                    return Err(E::NotFound(format!(
                        "ticket {ticket_id} is not in an order on this kiosk"
                    )));
                };
                Ok((no.clone(), orders::get(c, &no)?, orders::tickets(c, &no)?))
            })
            .await?;
        let order = order.ok_or_else(|| E::NotFound(format!("order {order_no}")))?;
        let t = tickets
            .into_iter()
            .find(|(t, _)| t.ticket_id == ticket_id)
            .map(|(t, _)| t)
            .ok_or_else(|| E::NotFound(format!("ticket {ticket_id}")))?;
        self.print_tickets(&order, &[t], Some((reason.trim(), by)))
            .await?;
        Ok(())
    }
}
