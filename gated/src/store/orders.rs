//! The kiosk's copy of orders: what central said about each (sold here or
//! online), and which of its tickets this kiosk has printed. A paid order is
//! stored before anything is printed, so a failed print or a power cut
//! leaves it printable.

use rusqlite::{Connection, OptionalExtension, params};

use crate::central::api::{IssuedTicket, Order, OrderStatus};
use crate::store::outbox::{self, Nonces, OutboxError, OutboxEvent};

/// Stores (or refreshes) an order and its tickets; printed marks are kept.
pub fn upsert(
    conn: &Connection,
    o: &Order,
    now_ms: i64,
    sold_here: bool,
    nonces: &Nonces,
) -> Result<(), OutboxError> {
    conn.execute(
        "INSERT INTO orders (order_no, order_code, status, body, phone_suffix, sold_here, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (order_no) DO UPDATE SET order_code = excluded.order_code,
             status = excluded.status, body = excluded.body,
             phone_suffix = excluded.phone_suffix, updated_ms = excluded.updated_ms,
             sold_here = MAX(sold_here, excluded.sold_here)",
        params![
            o.order_no,
            o.order_code,
            o.status.as_str(),
            serde_json::to_string(o).expect("order serializes"),
            o.phone_suffix,
            sold_here,
            now_ms
        ],
    )?;
    // A sale made here is reported once it is paid, however the kiosk
    // learns that (its own status poll or the sync, after a restart too).
    // Keyed by the order: learning it again is a retry of the same event.
    if o.status == OrderStatus::Paid {
        let sold_here: bool = conn.query_row(
            "SELECT sold_here FROM orders WHERE order_no = ?1",
            [&o.order_no],
            |r| r.get(0),
        )?;
        if sold_here {
            let sale = OutboxEvent::Sale {
                order_no: o.order_no.clone(),
                total_cents: o.total_cents.into(),
                tickets: o.tickets.iter().map(|t| t.ticket_id).collect(),
            };
            outbox::queue(conn, &nonces.keyed("sale", &o.order_no), &sale, now_ms)?;
        }
    }
    for t in &o.tickets {
        let holder = t.holder_hash.as_deref().and_then(|h| hex::decode(h).ok());
        conn.execute(
            "INSERT INTO order_tickets (ticket_id, order_no, holder_hash, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (ticket_id) DO UPDATE SET order_no = excluded.order_no,
                 holder_hash = excluded.holder_hash, body = excluded.body",
            params![
                t.ticket_id as i64,
                o.order_no,
                holder,
                serde_json::to_string(t).expect("ticket serializes")
            ],
        )?;
    }
    Ok(())
}

pub fn get(conn: &Connection, order_no: &str) -> rusqlite::Result<Option<Order>> {
    conn.query_row(
        "SELECT body FROM orders WHERE order_no = ?1",
        [order_no],
        |r| r.get::<_, String>(0),
    )
    .optional()
    .map(|b| b.and_then(|b| serde_json::from_str(&b).ok()))
}

/// A paid order's tickets and whether each was printed here.
pub fn tickets(
    conn: &Connection,
    order_no: &str,
) -> rusqlite::Result<Vec<(IssuedTicket, Option<i64>)>> {
    let mut st = conn.prepare_cached(
        "SELECT body, printed_ms FROM order_tickets WHERE order_no = ?1 ORDER BY ticket_id",
    )?;
    let rows = st.query_map([order_no], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (body, printed) = row?;
        if let Ok(t) = serde_json::from_str(&body) {
            out.push((t, printed));
        }
    }
    Ok(out)
}

/// Tickets of an order whose print was under way when gated stopped.
pub fn held_mid_print(conn: &Connection, order_no: &str) -> rusqlite::Result<Vec<u64>> {
    let mut st = conn.prepare_cached(
        "SELECT ticket_id FROM order_tickets
         WHERE order_no = ?1 AND printed_ms IS NULL AND print_started_ms IS NOT NULL",
    )?;
    let ids = st.query_map([order_no], |r| r.get::<_, i64>(0))?;
    ids.map(|r| r.map(|id| id as u64)).collect()
}

/// Paid orders found by the pickup keys, newest first.
pub fn find_by_code(conn: &Connection, code: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT order_no FROM orders WHERE order_code = ?1 AND status = 'paid'")?
        .query_map([code], |r| r.get(0))?
        .collect()
}

pub fn find_by_holder(conn: &Connection, hash: &[u8]) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT DISTINCT t.order_no FROM order_tickets t JOIN orders o USING (order_no)
         WHERE t.holder_hash = ?1 AND o.status = 'paid' ORDER BY t.order_no DESC",
    )?
    .query_map([hash], |r| r.get(0))?
    .collect()
}

pub fn find_by_phone(
    conn: &Connection,
    order_no: &str,
    suffix: &str,
) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT order_no FROM orders WHERE order_no = ?1 AND phone_suffix = ?2 AND status = 'paid'",
    )?
    .query_map([order_no, suffix], |r| r.get(0))?
    .collect()
}

/// The order a ticket on this kiosk belongs to.
pub fn order_of_ticket(conn: &Connection, ticket_id: u64) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT order_no FROM order_tickets WHERE ticket_id = ?1",
        [ticket_id as i64],
        |r| r.get(0),
    )
    .optional()
}

/// A ticket's print is under way: durable before the first byte goes out
/// (see the schema, 3), with the printer's cut counter if it has one (8).
pub fn print_started(
    conn: &Connection,
    ticket_id: u64,
    at_ms: i64,
    cuts_before: Option<u32>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE order_tickets SET print_started_ms = ?2, print_cuts_before = ?3 WHERE ticket_id = ?1",
        params![ticket_id as i64, at_ms, cuts_before],
    )
    .map(|_| ())
}

/// A ticket whose print was under way when gated stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPrint {
    pub ticket_id: u64,
    pub order_no: String,
    pub serial: String,
    pub started_ms: i64,
    pub cuts_before: Option<u32>,
}

/// Every ticket held mid-print on this kiosk, the latest first.
pub fn held_prints(conn: &Connection) -> rusqlite::Result<Vec<HeldPrint>> {
    let mut st = conn.prepare_cached(
        "SELECT ticket_id, order_no, body, print_started_ms, print_cuts_before FROM order_tickets
         WHERE printed_ms IS NULL AND print_started_ms IS NOT NULL
         ORDER BY print_started_ms DESC, ticket_id DESC",
    )?;
    let rows = st.query_map([], |r| {
        let body: String = r.get(2)?;
        let serial = serde_json::from_str::<IssuedTicket>(&body)
            .map(|t| t.serial)
            .unwrap_or_default();
        Ok(HeldPrint {
            ticket_id: r.get::<_, i64>(0)? as u64,
            order_no: r.get(1)?,
            serial,
            started_ms: r.get(3)?,
            cuts_before: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// The printer said it printed nothing: the ticket is printable again.
pub fn print_not_started(conn: &Connection, ticket_id: u64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE order_tickets SET print_started_ms = NULL WHERE ticket_id = ?1 AND printed_ms IS NULL",
        [ticket_id as i64],
    )
    .map(|_| ())
}

/// The printer confirmed the cut; a reprint also records why and who.
pub fn printed(
    conn: &Connection,
    ticket_id: u64,
    at_ms: i64,
    reprint: Option<(&str, &str)>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE order_tickets SET printed_ms = ?2 WHERE ticket_id = ?1",
        params![ticket_id as i64, at_ms],
    )?;
    if let Some((reason, by)) = reprint {
        conn.execute(
            "INSERT INTO reprints (ticket_id, reason, by, at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![ticket_id as i64, reason, by, at_ms],
        )?;
    }
    Ok(())
}
