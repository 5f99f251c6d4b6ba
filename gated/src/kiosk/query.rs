//! What a scanned ticket is: product, validity, entries used and left.

use super::*;

impl Kiosk {
    /// What a scanned ticket is: product, validity, entries used and left.
    pub async fn query(&self, code: &str) -> Result<QueryView, KioskError> {
        let keys = self
            .read(|s| s.pinned_keys().map_err(|e| E::Failed(e.to_string())))
            .await?;
        let catalog = self.catalog_stored().await.ok();
        let now = crate::lanes::local_now(&self.tz);
        // The lanes' own check: a key retired or not valid yet refuses here too.
        // Only the scanner's line ending goes (ticket-token.md §2): a space
        // is a Base45 digit.
        let payload = admission::token_ticket(code.trim_end_matches(['\r', '\n']), &keys, now)
            .map_err(|r| E::InvalidArgument(format!("not a valid ticket: {}", r.message().1)))?;
        // A token always carries its entries (0 = unlimited).
        let entries = payload.entries_allowed.unwrap_or(0);
        let product = catalog
            .as_ref()
            .and_then(|c| c.products.iter().find(|p| p.id == payload.product_id));
        let id = payload.id;
        // Every device's passages reach this one (the change feed, the
        // peers): what it knows counts even when the central system does
        // not answer, and it may know a passage the central system has not
        // received yet.
        let day = self.day.around(now);
        let (revoked, local) = self
            .read(move |s| {
                let failed = |e: crate::store::StoreError| E::Failed(e.to_string());
                let revoked = s.revocation(id).map_err(failed)?;
                Ok((revoked, s.usage(id, day).map_err(failed)?.entries))
            })
            .await?;
        let blocked = None::<String>;
        let remote: Option<api::TicketStatus> = match self.session() {
            Ok(s) => s
                .get(
                    &format!("{}/{}", paths::TICKETS, payload.id),
                    &[],
                    CALL_TIMEOUT,
                )
                .await
                .ok(),
            Err(_) => None,
        };
        let revoked = remote.as_ref().and_then(|r| r.revoked.clone()).or(revoked);
        let blocked = remote.as_ref().and_then(|r| r.blocked.clone()).or(blocked);
        let used = Some(remote.as_ref().map_or(local, |r| r.entries_used.max(local)));
        let left = used.map(|u| match entries {
            0 => u32::MAX,
            n => u32::from(n).saturating_sub(u),
        });
        let (state, zh, en) = if revoked.is_some() {
            ("revoked", "该票已退票或作废", "Refunded or cancelled")
        } else if blocked.is_some() {
            (
                "blocked",
                "该票已被冻结，请咨询工作人员",
                "Blocked: please ask staff",
            )
        } else if now >= payload.valid_until {
            ("expired", "该票已过期", "Expired")
        } else if now < payload.valid_from {
            ("not_yet_valid", "该票尚未生效", "Not valid yet")
        } else if left == Some(0) {
            ("used", "该票已使用", "Already used")
        } else {
            ("valid", "该票有效", "Valid")
        };
        Ok(QueryView {
            ticket_id: payload.id,
            product: product.map_or_else(|| format!("#{}", payload.product_id), |p| p.name.clone()),
            product_en: product.map_or_else(String::new, |p| p.name_en.clone()),
            valid_from: crate::central::format_civil(payload.valid_from),
            valid_until: crate::central::format_civil(payload.valid_until),
            entries_allowed: entries,
            entries_used: used,
            entries_left: left.filter(|l| *l != u32::MAX),
            state: state.into(),
            message_zh: zh.into(),
            message_en: en.into(),
        })
    }
}
