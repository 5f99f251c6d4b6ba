//! Simulated UPS sources: an `upsd` speaking NUT's protocol on a TCP port,
//! and a UPower service on a D-Bus bus of your choosing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A NUT `upsd` with one UPS and settable variables.
#[derive(Debug)]
pub struct SimUpsd {
    vars: Arc<Mutex<BTreeMap<String, String>>>,
    ups: String,
    task: JoinHandle<()>,
}

impl Drop for SimUpsd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimUpsd {
    /// Serves on `addr` (port 0 picks one); returns the server and its address.
    pub async fn start(addr: SocketAddr, ups: &str) -> std::io::Result<(Self, SocketAddr)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let vars: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        {
            let mut v = vars.lock().expect("vars");
            v.insert("ups.status".into(), "OL".into());
            v.insert("battery.charge".into(), "100".into());
            v.insert("battery.runtime".into(), "1800".into());
        }
        let (shared, name) = (vars.clone(), ups.to_owned());
        let task = tokio::spawn(async move {
            // Connections live in this set: stopping the server drops them all.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (vars, name) = (shared.clone(), name.clone());
                connections.spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = BufReader::new(r).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply = answer(&vars, &name, &line);
                        if w.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok((
            SimUpsd {
                vars,
                ups: ups.to_owned(),
                task,
            },
            local,
        ))
    }

    pub fn set(&self, var: &str, value: &str) {
        self.vars
            .lock()
            .expect("vars")
            .insert(var.to_owned(), value.to_owned());
    }

    pub fn unset(&self, var: &str) {
        self.vars.lock().expect("vars").remove(var);
    }

    pub fn ups(&self) -> &str {
        &self.ups
    }
}

fn quote(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

fn answer(vars: &Mutex<BTreeMap<String, String>>, ups: &str, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let vars = vars.lock().expect("vars");
    match words[..] {
        ["GET", "VAR", u, var] if u == ups => match vars.get(var) {
            Some(v) => format!("VAR {ups} {var} \"{}\"\n", quote(v)),
            None => "ERR VAR-NOT-SUPPORTED\n".into(),
        },
        ["GET", "VAR", _, _] => "ERR UNKNOWN-UPS\n".into(),
        ["LIST", "UPS"] => format!("BEGIN LIST UPS\nUPS {ups} \"simulated UPS\"\nEND LIST UPS\n"),
        ["LIST", "VAR", u] if u == ups => {
            let mut s = format!("BEGIN LIST VAR {ups}\n");
            for (k, v) in vars.iter() {
                s += &format!("VAR {ups} {k} \"{}\"\n", quote(v));
            }
            s + &format!("END LIST VAR {ups}\n")
        }
        ["LOGOUT"] => "OK Goodbye\n".into(),
        _ => "ERR UNKNOWN-COMMAND\n".into(),
    }
}

/// UPower's daemon object.
#[derive(Debug)]
pub struct FakeUPower {
    pub on_battery: bool,
}

#[zbus::interface(name = "org.freedesktop.UPower")]
impl FakeUPower {
    #[zbus(property)]
    fn on_battery(&self) -> bool {
        self.on_battery
    }

    fn get_display_device(&self) -> zbus::OwnedObjectPath {
        zbus::OwnedObjectPath::try_from(DISPLAY_DEVICE).expect("valid path")
    }
}

/// UPower's display device.
#[derive(Debug)]
pub struct FakeDevice {
    pub percentage: f64,
    pub time_to_empty: i64,
    pub warning_level: u32,
}

#[zbus::interface(name = "org.freedesktop.UPower.Device")]
impl FakeDevice {
    #[zbus(property)]
    fn percentage(&self) -> f64 {
        self.percentage
    }
    #[zbus(property)]
    fn time_to_empty(&self) -> i64 {
        self.time_to_empty
    }
    #[zbus(property)]
    fn warning_level(&self) -> u32 {
        self.warning_level
    }
}

pub const DISPLAY_DEVICE: &str = "/org/freedesktop/UPower/devices/DisplayDevice";

/// A UPower service on a bus; change its properties and the signals follow.
#[derive(Debug)]
pub struct SimUPower {
    conn: zbus::Connection,
}

impl SimUPower {
    /// Serves `org.freedesktop.UPower` on the bus at `address`.
    pub async fn start(address: &str) -> zbus::Result<Self> {
        let conn = zbus::connection::Builder::address(address)
            .name("org.freedesktop.UPower")
            .serve_at("/org/freedesktop/UPower", FakeUPower { on_battery: false })
            .serve_at(
                DISPLAY_DEVICE,
                FakeDevice {
                    percentage: 100.0,
                    time_to_empty: 0,
                    warning_level: 1,
                },
            )
            .build()
            .await?;
        Ok(SimUPower { conn })
    }

    pub async fn set_on_battery(&self, on: bool) -> zbus::Result<()> {
        let iface = self
            .conn
            .object_server()
            .interface::<_, FakeUPower>("/org/freedesktop/UPower")
            .await?;
        let mut i = iface.get_mut().await;
        i.on_battery = on;
        i.on_battery_changed(iface.signal_emitter()).await
    }

    /// Sets the display device's charge, time to empty and warning level.
    pub async fn set_battery(
        &self,
        percentage: f64,
        time_to_empty: i64,
        warning_level: u32,
    ) -> zbus::Result<()> {
        let iface = self
            .conn
            .object_server()
            .interface::<_, FakeDevice>(DISPLAY_DEVICE)
            .await?;
        let mut d = iface.get_mut().await;
        d.percentage = percentage;
        d.time_to_empty = time_to_empty;
        d.warning_level = warning_level;
        d.percentage_changed(iface.signal_emitter()).await?;
        d.time_to_empty_changed(iface.signal_emitter()).await?;
        d.warning_level_changed(iface.signal_emitter()).await
    }
}
