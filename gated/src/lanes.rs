//! The lane role at run time: starts every configured lane's devices, turns
//! what they read into presentations, and runs each through the lane
//! transaction. Lanes run concurrently; a broken device degrades only its
//! lane and is reported.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use hal::gate::modbus::{self, ModbusSettings};
use hal::gate::{GateHandle, ModbusAddress, RegisterMap};
use hal::iccard::IcEvent;
use hal::scanner::ScannerPort;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::{Config, Direction as LaneDirection};
use crate::lane::{Admission, Lanes, Medium, Scan};
use crate::store::Store;
use crate::tickets::token::LocalMinute;

#[derive(Debug, thiserror::Error)]
pub enum LanesError {
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Lane(#[from] crate::lane::LaneError),
    #[error("gate {name}: {why}")]
    Gate { name: String, why: String },
    #[error("time zone {0}: {1}")]
    TimeZone(String, String),
}

/// The scenic area's civil time now, in minutes since 2000-01-01.
pub fn local_now(tz: &jiff::tz::TimeZone) -> LocalMinute {
    let dt = jiff::Timestamp::now().to_zoned(tz.clone()).datetime();
    let epoch = jiff::civil::date(2000, 1, 1).at(0, 0, 0, 0);
    let minutes = dt.duration_since(epoch).as_secs() / 60;
    minutes.max(0) as LocalMinute
}

/// Starts every lane of `config`; the tasks run until the set is dropped.
pub async fn start(config: &Config, store: Store) -> Result<(JoinSet<()>, Lanes), LanesError> {
    let tz_name = config.timezone.get_ref().clone();
    let tz = jiff::tz::TimeZone::get(&tz_name)
        .map_err(|e| LanesError::TimeZone(tz_name.clone(), e.to_string()))?;
    if store.setting("id_hash_key")?.is_none() {
        warn!(
            "no ID-hash key provisioned: ID cards cannot be matched to tickets until the device is enrolled"
        );
    }
    let lanes = Lanes::new(store)?;
    let device_id = config.device_id.get_ref().clone();

    // One task per gate device, shared by the lanes that use it.
    let mut gates: HashMap<String, GateHandle> = HashMap::new();
    for (name, g) in &config.devices.gates {
        let g = g.get_ref();
        let fail = |why| LanesError::Gate {
            name: name.clone(),
            why,
        };
        let handle = match (&g.modbus, &g.gpio) {
            (Some(addr), _) => {
                let address: ModbusAddress = addr.get_ref().parse().map_err(fail)?;
                let map = RegisterMap::load(g.map.get_ref()).map_err(fail)?;
                modbus::spawn(ModbusSettings {
                    poll: std::time::Duration::from_millis(g.poll_ms.max(1)),
                    passage_timeout: std::time::Duration::from_millis(g.passage_timeout_ms),
                    tailgate_window: std::time::Duration::from_millis(g.tailgate_window_ms),
                    ..ModbusSettings::new(address, g.unit, map)
                })
            }
            (None, Some(file)) => {
                let gpio = hal::gate::gpio::GpioConfig::load(file.get_ref()).map_err(fail)?;
                gpio.open(name).map_err(fail)?
            }
            (None, None) => return Err(fail("no gate backend configured".into())),
        };
        gates.insert(name.clone(), handle);
    }

    let mut tasks = JoinSet::new();
    let nonces = std::sync::Arc::new(AtomicU64::new(0));
    for (name, lane) in &config.lanes {
        let lane = lane.get_ref();
        let gate = gates[lane.gate.get_ref()].clone();
        let (tx, rx) = mpsc::channel::<Presented>(16);
        let d = &config.devices;
        let mut sources = Vec::new();
        let exit_side = lane.exit_scanners.iter().map(|s| (s, true));
        for (s, exit) in lane.scanners.iter().map(|s| (s, false)).chain(exit_side) {
            let sc = d.scanners[s.get_ref()].get_ref();
            let port = match (&sc.port, &sc.evdev) {
                (Some(p), _) => ScannerPort::Serial {
                    path: p.get_ref().clone(),
                    baud: sc.baud.as_ref().map_or(9600, |b| *b.get_ref()),
                },
                (None, Some(e)) => ScannerPort::Evdev {
                    path: e.get_ref().clone(),
                },
                (None, None) => continue,
            };
            let mut dev = hal::scanner::spawn(s.get_ref(), port);
            let tx = tx.clone();
            sources.push(tokio::spawn(async move {
                while let Some(scan) = dev.next().await {
                    let p = Presented {
                        medium: Medium::Code(scan.text),
                        kind: "qr",
                        exit,
                    };
                    if tx.send(p).await.is_err() {
                        return;
                    }
                }
            }));
        }
        if let Some(r) = &lane.id_reader {
            let rd = d.id_readers[r.get_ref()].get_ref();
            let baud = rd
                .baud
                .as_ref()
                .map_or(hal::idcard::DEFAULT_BAUD, |b| *b.get_ref());
            let mut dev = hal::idcard::spawn(r.get_ref(), rd.port.get_ref(), baud);
            let (tx, lanes) = (tx.clone(), lanes.clone());
            sources.push(tokio::spawn(async move {
                while let Some(read) = dev.next().await {
                    // The number is hashed here and goes no further.
                    let Some(hash) = lanes.holder_hash(&read.card.id_number) else {
                        warn!("ID card read, but no ID-hash key is provisioned");
                        continue;
                    };
                    let p = Presented {
                        medium: Medium::Holder(hash),
                        kind: "id-card",
                        exit: false,
                    };
                    if tx.send(p).await.is_err() {
                        return;
                    }
                }
            }));
        }
        if let Some(r) = &lane.ic_reader {
            let rd = d.ic_readers[r.get_ref()].get_ref();
            let baud = rd.baud.as_ref().map_or(9600, |b| *b.get_ref());
            let mut dev = hal::iccard::spawn(r.get_ref(), rd.port.get_ref(), baud);
            let tx = tx.clone();
            sources.push(tokio::spawn(async move {
                while let Some(ev) = dev.next().await {
                    match ev {
                        IcEvent::Present { uid, .. } => {
                            let p = Presented {
                                medium: Medium::Card(uid),
                                kind: "ic-card",
                                exit: false,
                            };
                            if tx.send(p).await.is_err() {
                                return;
                            }
                        }
                        IcEvent::Removed { reader, .. } => info!(reader, "card removed"),
                    }
                }
            }));
        }
        drop(tx);
        let display = lane.display.as_ref().map(|n| {
            let dev = d.displays[n.get_ref()].get_ref();
            hal::display::LineDisplay::new(
                dev.port.get_ref(),
                dev.baud.as_ref().map_or(9600, |b| *b.get_ref()),
            )
        });
        let ctx = LaneCtx {
            display,
            name: name.clone(),
            group: lane.group.clone(),
            direction: lane.direction,
            device_id: device_id.clone(),
            lanes: lanes.clone(),
            gate,
            tz: tz.clone(),
            nonces: nonces.clone(),
        };
        info!(lane = name, group = lane.group, "lane ready");
        tasks.spawn(async move {
            ctx.run(rx).await;
            for s in sources {
                s.abort();
            }
        });
    }
    Ok((tasks, lanes))
}

/// One read at one of the lane's devices.
struct Presented {
    medium: Medium,
    kind: &'static str,
    /// Read on the exit side of a two-way lane.
    exit: bool,
}

struct LaneCtx {
    display: Option<hal::display::LineDisplay>,
    name: String,
    group: String,
    direction: LaneDirection,
    device_id: String,
    lanes: Lanes,
    gate: GateHandle,
    tz: jiff::tz::TimeZone,
    nonces: std::sync::Arc<AtomicU64>,
}

impl LaneCtx {
    /// One presentation at a time: a lane has one gate.
    /// Tells the visitor; a broken display is reported and never stops the lane.
    async fn show(&mut self, zh: &str, en: &str) {
        if let Some(d) = &mut self.display
            && let Err(e) = d.show(&format!("{zh} {en}")).await
        {
            warn!(lane = self.name, "display: {e}");
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Presented>) {
        while let Some(Presented { medium, kind, exit }) = rx.recv().await {
            let at_ms = jiff::Timestamp::now().as_millisecond();
            let nonce = format!(
                "{}-{}-{at_ms}-{}",
                self.device_id,
                self.name,
                self.nonces.fetch_add(1, Ordering::Relaxed)
            );
            let scan = Scan {
                lane: &self.name,
                lane_group: &self.group,
                medium: &medium,
                nonce: &nonce,
                now: local_now(&self.tz),
                at_ms,
            };
            let result = if exit || self.direction == LaneDirection::Exit {
                self.lanes.let_out(&self.gate, &scan).await
            } else {
                self.lanes.admit(&self.gate, &scan).await
            };
            let (zh, en) = match &result {
                Ok(Admission::Refused(reason)) => reason.message(),
                Ok(Admission::Admitted { .. }) => ("请通行", "Please pass"),
                Ok(Admission::NotPassed { .. }) => {
                    ("未通行，票仍有效", "Not passed: your ticket is still valid")
                }
                Ok(Admission::Alarm { .. }) => ("请一人一票通行", "One person per ticket, please"),
                Ok(Admission::GateFault { .. }) | Err(_) => {
                    ("暂停服务，请找工作人员", "Out of service: please ask staff")
                }
            };
            self.show(zh, en).await;
            match result {
                Ok(Admission::Refused(reason)) => {
                    let (zh, en) = reason.message();
                    info!(
                        lane = self.name,
                        medium = kind,
                        reason = reason.code(),
                        "refused: {en} / {zh}"
                    );
                }
                Ok(Admission::Admitted { ticket_id, persons }) => {
                    info!(
                        lane = self.name,
                        medium = kind,
                        ticket = ticket_id,
                        persons,
                        nonce,
                        "admitted"
                    );
                }
                Ok(Admission::NotPassed { ticket_id }) => {
                    info!(
                        lane = self.name,
                        ticket = ticket_id,
                        "not passed: the ticket stays valid"
                    );
                }
                Ok(Admission::Alarm {
                    ticket_id,
                    kind: alarm,
                    persons,
                }) => {
                    warn!(lane = self.name, ticket = ticket_id, persons, alarm = ?alarm, nonce, "alarm");
                }
                Ok(Admission::GateFault { ticket_id, why }) => {
                    error!(
                        lane = self.name,
                        ticket = ticket_id,
                        "gate fault, nothing recorded: {why}"
                    );
                }
                Err(e) => error!(lane = self.name, "could not record the passage: {e}"),
            }
        }
    }
}
