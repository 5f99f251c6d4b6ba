//! Paying an order (a QR to show, or a scanned payment code), its status,
//! and cancelling an unpaid one.

use super::*;

impl Kiosk {
    /// Starts payment: `qr` returns what to show, `code` pays with the
    /// visitor's scanned payment code at once.
    pub async fn pay(
        &self,
        order_no: &str,
        method: &str,
        code: &str,
    ) -> Result<api::Payment, KioskError> {
        let req = match method {
            "qr" => api::PayRequest::Qr,
            "code" => api::PayRequest::Code {
                code: code.trim().to_owned(),
            },
            m => {
                return Err(E::InvalidArgument(format!(
                    "payment method {m:?}: qr or code"
                )));
            }
        };
        let session = self.session()?;
        let payment: api::Payment = session
            .post(&format!("{}/{order_no}/pay", paths::ORDERS), &req)
            .await
            .map_err(central_error)?;
        if payment.status == OrderStatus::Paid {
            self.refresh_order(&session, order_no).await?;
        }
        Ok(payment)
    }

    /// Asks central for the order and stores it; a newly paid one gets its sale event.
    pub(super) async fn refresh_order(
        &self,
        session: &Session,
        order_no: &str,
    ) -> Result<Order, KioskError> {
        let order: Order = session
            .get(&format!("{}/{order_no}", paths::ORDERS), &[], CALL_TIMEOUT)
            .await
            .map_err(central_error)?;
        self.save_order(&order, false).await?;
        Ok(order)
    }

    /// The order's status now (asks central when online, else what is stored).
    pub async fn order_status(&self, order_no: &str) -> Result<OrderStatus, KioskError> {
        match self.session() {
            Ok(s) => Ok(self.refresh_order(&s, order_no).await?.status),
            Err(e) => {
                let no = order_no.to_owned();
                self.read(move |s| Ok(orders::get(s.conn_ref(), &no)?))
                    .await?
                    .map(|o| o.status)
                    .ok_or(e)
            }
        }
    }

    pub async fn cancel(&self, order_no: &str) -> Result<(), KioskError> {
        let session = self.session()?;
        let order: Order = session
            .post(
                &format!("{}/{order_no}/cancel", paths::ORDERS),
                &serde_json::json!({}),
            )
            .await
            .map_err(central_error)?;
        self.save_order(&order, false).await?;
        Ok(())
    }
}
