//! A kiosk device for end-to-end tests and benchmarks: gated (kiosk role)
//! on a private dbus-daemon with the shipped bus policy, central-sim over
//! TLS, and the printer, scanner and ID-card reader simulators on PTYs; the
//! test talks to gated as the kiosk UI does.

use std::path::PathBuf;
use std::time::Duration;

use hal::idcard::sim::SimIdReader;
use hal::printer::sim::SimPrinter;
use hal::pty::Pty;
use hal::scanner::sim::SimScanner;
use serde_json::Value;

use crate::procs::{Bus, CentralSim, Gated, gatectl};

pub const NAME: &str = "cn.scenicpark.Gated";
pub const PATH: &str = "/cn/scenicpark/Gated";
pub const KIOSK: &str = "cn.scenicpark.Gated.Kiosk1";
/// The service menu's PIN; gated.toml holds its hash.
pub const SERVICE_PIN: &str = "2468";
/// Generous: it bounds a hang, it does not measure.
pub const BOUND: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Kiosk {
    pub dir: tempfile::TempDir,
    pub central: CentralSim,
    pub bus: Bus,
    pub conn: zbus::Connection,
    pub printer: SimPrinter,
    pub scanner: SimScanner,
    pub id_reader: SimIdReader,
    pub ups: hal::power::sim::SimUpsd,
    pub gated: Option<Gated>,
}

impl Kiosk {
    /// Everything started, the kiosk enrolled, online, printer asked: a sale can start.
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// The same, gated.toml ending with `extra` (whole sections).
    pub async fn start_with(extra: &str) -> Self {
        let mut k = Self::prepare(extra, true).await;
        k.start_gated().await;
        k
    }

    /// gated running, the kiosk not enrolled: it waits for its setup.
    pub async fn start_unenrolled() -> Self {
        let mut k = Self::prepare("", false).await;
        let mut g = Gated::start_on_bus(&k.config(), &k.bus.address);
        g.wait_for(&["D-Bus API served"]).await;
        k.gated = Some(g);
        k
    }

    async fn prepare(extra: &str, enroll: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let central = CentralSim::start(&dir.path().join("central"), "127.0.0.1:0").await;
        let policy = crate::repo_root().join("image/etc/dbus-1/system.d/cn.scenicpark.Gated.conf");
        // gated runs as the test's user here (root in CI); the kiosk UI as nobody.
        let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .unwrap()
            .name;
        let bus = Bus::start(
            &dir.path().join("bus"),
            Some((&policy, &[("gated", me.as_str()), ("kiosk", "nobody")])),
        )
        .await;
        let d = dir.path();
        let printer = SimPrinter::start(Pty::open_at(&d.join("printer")).unwrap());
        let scanner = SimScanner::new(Pty::open_at(&d.join("scanner")).unwrap());
        let id_reader = SimIdReader::start(Pty::open_at(&d.join("id-reader")).unwrap());
        let (ups, ups_addr) =
            hal::power::sim::SimUpsd::start("127.0.0.1:0".parse().unwrap(), "ups")
                .await
                .unwrap();
        let toml = format!(
            "role = \"kiosk\"\ndevice_id = \"kiosk-1\"\nstate_dir = \"{d}/state\"\n\
             [central]\nurl = \"{}\"\nca_file = \"{}\"\nheartbeat_s = 1\n\
             [devices.printer]\nport = \"{d}/printer\"\n\
             [devices.scanners.qr]\nport = \"{d}/scanner\"\n\
             [devices.id_readers.id]\nport = \"{d}/id-reader\"\n\
             [power]\nnut = \"{ups_addr}/ups\"\npoll_ms = 50\n\
             [kiosk]\nservice_pin_hash = \"{pin}\"\nsale_horizon_days = 10\nmax_quantity = 12\n{extra}",
            central.at.api,
            central.at.ca_file.display(),
            d = d.display(),
            // Few rounds: a test needs no protection against guessing.
            pin = gated::service_pin::PinHash::new(SERVICE_PIN, 1000).unwrap(),
        );
        std::fs::write(d.join("gated.toml"), toml).unwrap();
        if enroll {
            let code = central.pairing_code("kiosk-1", "kiosk", 600).await;
            let cfg = d.join("gated.toml");
            let (rc, out, err) =
                gatectl(&["provision", "--code", &code, "-c", cfg.to_str().unwrap()]).await;
            assert_eq!(rc, 0, "{out}{err}");
        }
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .build()
            .await
            .unwrap();
        Kiosk {
            dir,
            central,
            bus,
            conn,
            printer,
            scanner,
            id_reader,
            ups,
            gated: None,
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("gated.toml")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub async fn start_gated(&mut self) {
        let mut g = Gated::start_on_bus(&self.config(), &self.bus.address);
        g.wait_for(&["D-Bus API served"]).await;
        self.gated = Some(g);
        // Online and the printer asked at least once: a sale can start.
        self.wait_for_sale(None).await;
    }

    /// Waits until the kiosk can sell (`true`) or reports `reason` for not selling.
    pub async fn wait_for_sale(&self, reason: Option<&str>) {
        let deadline = tokio::time::Instant::now() + BOUND;
        loop {
            let done = match reason {
                None => self.prop::<bool>("SaleAvailable").await,
                Some(r) => self
                    .prop::<Vec<String>>("OutOfServiceReasons")
                    .await
                    .iter()
                    .any(|x| x == r),
            };
            if done {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {BOUND:?} for the kiosk to report {reason:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A `CreateOrder` of `qty` × product that must be refused: (error name, message).
    pub async fn order_refused(&self, date: &str, product: u32, qty: u16) -> (String, String) {
        self.call_json(
            "CreateOrder",
            &(date, vec![(product, 0u16, qty)], Vec::<String>::new(), ""),
        )
        .await
        .unwrap_err()
    }

    /// `Kiosk1` signals named `member`, as they arrive.
    pub async fn signals(&self, member: &str) -> zbus::MessageStream {
        zbus::MessageStream::for_match_rule(
            zbus::MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .interface(KIOSK)
                .member(member)
                .build()
                .unwrap(),
            &self.conn,
            None,
        )
        .await
        .unwrap()
    }

    /// A Kiosk1 property.
    pub async fn prop<T: TryFrom<zbus::OwnedVariant>>(&self, name: &str) -> T
    where
        T::Error: std::fmt::Debug,
    {
        self.prop_of(KIOSK, name).await
    }

    /// A property of `interface` (e.g. `gated_api::DEVICE1`).
    pub async fn prop_of<T: TryFrom<zbus::OwnedVariant>>(&self, interface: &str, name: &str) -> T
    where
        T::Error: std::fmt::Debug,
    {
        let reply = self
            .conn
            .call_method(
                Some(NAME),
                PATH,
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(interface, name),
            )
            .await
            .unwrap();
        let v: zbus::OwnedVariant = reply.body().deserialize().unwrap();
        T::try_from(v).unwrap()
    }

    /// A Kiosk1 call; Err is (error name, message).
    pub async fn call<B>(&self, method: &str, body: &B) -> Result<zbus::Message, (String, String)>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        match self
            .conn
            .call_method(Some(NAME), PATH, Some(KIOSK), method, body)
            .await
        {
            Ok(m) => Ok(m),
            Err(zbus::Error::MethodError(name, msg, _)) => {
                Err((name.to_string(), msg.unwrap_or_default()))
            }
            Err(e) => panic!("{method}: {e}"),
        }
    }

    pub async fn call_json<B>(&self, method: &str, body: &B) -> Result<Value, (String, String)>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let m = self.call(method, body).await?;
        Ok(record_json(&m))
    }

    pub async fn order(&self, product: u32, qty: u16, handles: &[&str], phone: &str) -> Value {
        let handles: Vec<String> = handles.iter().map(|h| h.to_string()).collect();
        self.call_json(
            "CreateOrder",
            &(today(), vec![(product, 0u16, qty)], handles, phone),
        )
        .await
        .unwrap()
    }

    pub async fn pay_code(&self, order_no: &str, code: &str) -> Result<String, (String, String)> {
        let m = self.call("Pay", &(order_no, "code", code)).await?;
        let (status, _qr, _exp): (String, String, i64) = m.body().deserialize().unwrap();
        Ok(status)
    }

    pub async fn print(&self, order_no: &str) -> Result<u32, (String, String)> {
        let m = self.call("Print", &(order_no,)).await?;
        Ok(m.body().deserialize().unwrap())
    }

    /// Places `card` on the reader and returns the `IdCardRead` it caused;
    /// `reads` from [`signals`](Self::signals)`("IdCardRead")`, taken before.
    pub async fn read_card(
        &self,
        reads: &mut zbus::MessageStream,
        card: hal::idcard::IdCard,
    ) -> CardRead {
        use futures_util::StreamExt;
        self.id_reader.present(card);
        let signal = tokio::time::timeout(BOUND, reads.next())
            .await
            .expect("IdCardRead in time")
            .expect("signal stream")
            .expect("signal");
        signal.body().deserialize().unwrap()
    }

    /// Sells one real-name ticket (product 3) to the holder of `handle`,
    /// pays it by code and prints it; its order number.
    pub async fn sell_real_name(&self, handle: &str) -> String {
        let order = self.order(3, 1, &[handle], "13800138000").await;
        let no = order["order_no"].as_str().unwrap().to_owned();
        assert_eq!(
            self.pay_code(&no, "2876543210981111").await.unwrap(),
            "paid"
        );
        assert_eq!(self.print(&no).await.unwrap(), 1);
        no
    }

    /// Collects order `no` with the ID card behind `handle`: found by the
    /// card, then its one ticket printed.
    pub async fn collect_by_id(&self, handle: &str, no: &str) {
        let found = self.call_json("Pickup", &("id", handle, "")).await.unwrap();
        assert_eq!(found[0]["order_no"], no);
        assert_eq!(self.print(no).await.unwrap(), 1);
    }

    /// A web-shop order of product 3 bound to `id_number`, once it has
    /// reached this kiosk through the change feed; its order number.
    pub async fn web_order_synced(&self, id_number: &str) -> String {
        let online = self
            .central
            .admin(
                "/sim/online-order",
                serde_json::json!({ "product_id": 3, "id_numbers": [id_number] }),
            )
            .await;
        let no = online["order_no"].as_str().unwrap().to_owned();
        let q = format!("SELECT COUNT(*) FROM orders WHERE order_no = '{no}'");
        crate::procs::wait_until("the web order synced to the kiosk", BOUND, || {
            crate::procs::db_count(&self.state(), &q) == 1
        })
        .await;
        no
    }
}

/// A reply holding one record (`a{sv}`) or a list of them (`aa{sv}`) as
/// JSON, read the way a generic D-Bus client reads it: by shape, not by type.
pub fn record_json(m: &zbus::Message) -> Value {
    use std::collections::HashMap;
    type Record = HashMap<String, zbus::OwnedVariant>;
    let object = |r: Record| -> Value {
        Value::Object(
            r.iter()
                .map(|(k, v)| (k.clone(), gated_api::value_to_json(v)))
                .collect(),
        )
    };
    let body = m.body();
    match body.signature().to_string().as_str() {
        "a{sv}" => object(body.deserialize::<Record>().unwrap()),
        "aa{sv}" => Value::Array(
            body.deserialize::<Vec<Record>>()
                .unwrap()
                .into_iter()
                .map(object)
                .collect(),
        ),
        other => panic!("not a record: signature {other}"),
    }
}

pub fn today() -> String {
    crate::central_sim::admin::today().to_string()
}

pub fn tomorrow() -> String {
    crate::central_sim::admin::today()
        .tomorrow()
        .unwrap()
        .to_string()
}

/// The arguments of an `IdCardRead` signal.
#[derive(Debug, serde::Deserialize, zbus::zvariant::Type)]
pub struct CardRead {
    pub handle: String,
    pub name: String,
    pub number: String,
    pub kind: String,
}
