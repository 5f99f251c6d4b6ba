//! Site peers: the devices of one scenic area send each other their
//! committed passages directly, so a ticket used at one is refused at the
//! others within a round trip on the site network, with the central system
//! down as well as up (docs/fleet.md).
//!
//! Each device **serves its own passages** in its own sequence (1, 2, 3 …)
//! and **follows every peer** by a cursor it keeps in its database: a
//! follower dials the peer, says the last number it has, and receives what
//! came after, then each new passage as soon as it is committed (a ping
//! every second when there is none). A peer that was down catches up from
//! its cursor, as from the central feed. Passages are recorded once by
//! nonce, so one that also arrives through the central system counts once.
//!
//! Who is a peer: the catalog's devices of the site (with the address each
//! advertised in its heartbeat) and `[[peers.device]]` in gated.toml, minus
//! revoked devices and this one. Connections are mutual TLS 1.3 with the
//! devices' Ed25519 keys ([`tls`]).

pub mod tls;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::central::api::{self, PassageRecord};
use crate::central::client::Session;
use crate::config::{Config, StaticPeer};
use crate::store::Db;

/// A peer sends a ping this often when it has no passage to send; a
/// follower that hears nothing for [`SILENT`] drops the connection.
pub const PING: Duration = Duration::from_secs(1);
pub const SILENT: Duration = Duration::from_secs(5);
/// Passages per message.
const BATCH: usize = 500;
/// The longest line a peer may send.
const MAX_LINE: usize = 4 << 20;

/// A device of the site this one exchanges passages with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub device_id: String,
    pub address: String,
    pub public_key: [u8; 32],
}

/// The site's devices as this one trusts them now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerSet {
    pub peers: BTreeMap<String, Peer>,
    /// Revoked devices' keys (by id), refused with that reason.
    revoked: BTreeMap<String, Option<[u8; 32]>>,
}

impl PeerSet {
    /// gated.toml's devices, then the catalog's (which wins: a device
    /// enrolled again has a new key), minus revoked ones and `own`.
    pub fn build(statics: &[StaticPeer], catalog: Option<&api::Catalog>, own: &str) -> PeerSet {
        let mut set = PeerSet::default();
        for d in statics {
            if let Some(key) = parse_key(&d.public_key) {
                set.peers.insert(
                    d.device_id.clone(),
                    Peer {
                        device_id: d.device_id.clone(),
                        address: d.address.clone(),
                        public_key: key,
                    },
                );
            }
        }
        if let Some(c) = catalog {
            for d in &c.devices {
                let Some(key) = parse_key(&d.public_key) else {
                    continue;
                };
                let address = d
                    .peer_address
                    .clone()
                    .or_else(|| set.peers.get(&d.device_id).map(|p| p.address.clone()));
                if let Some(address) = address {
                    let peer = Peer {
                        device_id: d.device_id.clone(),
                        address,
                        public_key: key,
                    };
                    set.peers.insert(d.device_id.clone(), peer);
                }
            }
            for id in &c.revoked_devices {
                let key = set.peers.remove(id).map(|p| p.public_key);
                set.revoked.insert(id.clone(), key);
            }
        }
        set.peers.remove(own);
        set
    }

    /// Keeps the keys of devices revoked since `before`, so that they are
    /// refused as revoked (the catalog names revoked devices, not their keys).
    pub fn remember_revoked(&mut self, before: &PeerSet) {
        for (id, key) in &mut self.revoked {
            if key.is_none() {
                *key = before
                    .peers
                    .get(id)
                    .map(|p| p.public_key)
                    .or_else(|| before.revoked.get(id).copied().flatten());
            }
        }
    }

    pub fn by_key(&self, key: &[u8; 32]) -> Option<&Peer> {
        self.peers.values().find(|p| &p.public_key == key)
    }

    /// The revoked device this key was, if any.
    pub fn revoked_key(&self, key: &[u8; 32]) -> Option<&str> {
        self.revoked
            .iter()
            .find(|(_, k)| k.as_ref() == Some(key))
            .map(|(id, _)| id.as_str())
    }
}

/// 64 hex digits → an Ed25519 public key.
pub fn parse_key(hex_key: &str) -> Option<[u8; 32]> {
    hex::decode(hex_key.trim()).ok()?.try_into().ok()
}

/// One peer as `gatectl status` and `Device1.Peers` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStatus {
    pub device_id: String,
    pub address: String,
    /// Connected and heard from within [`SILENT`].
    pub reachable: bool,
    /// When it last sent anything (Unix ms).
    pub last_message_ms: Option<i64>,
    /// Its own passages: the newest it has, and the newest this device has of them.
    pub head: u64,
    pub cursor: u64,
    pub last_error: Option<String>,
}

impl PeerStatus {
    /// Its passages this device has not received yet (as of its last message).
    pub fn lag(&self) -> u64 {
        self.head.saturating_sub(self.cursor)
    }
}

/// The site network as this device sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetStatus {
    /// Where it listens and what it advertises (None: no site network yet).
    pub listening: Option<String>,
    pub advertised: Option<String>,
    /// This device's key (hex), as peers know it.
    pub public_key: Option<String>,
    pub peers: Vec<PeerStatus>,
    /// Connections refused since start (unknown, revoked, failed handshakes).
    pub refused: u64,
}

impl FleetStatus {
    /// Passages of all peers not received yet.
    pub fn lag(&self) -> u64 {
        self.peers.iter().map(PeerStatus::lag).sum()
    }

    /// The heartbeat's part; `conflicts` is what the database holds.
    pub fn report(&self, conflicts: u64) -> api::PeerReport {
        api::PeerReport {
            address: self.advertised.clone(),
            known: self.peers.len() as u32,
            reachable: self.peers.iter().filter(|p| p.reachable).count() as u32,
            lag: self.lag(),
            conflicts,
        }
    }
}

/// What peers say to each other, one JSON object per line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// The follower's first line: who it is and the last of the peer's
    /// passages it has.
    Hello { device_id: String, cursor: u64 },
    /// The peer's own passages after the cursor, in order; `head` is its newest.
    Passages {
        passages: Vec<PassageRecord>,
        head: u64,
    },
    /// Nothing new; `head` is its newest passage.
    Ping { head: u64, at_ms: i64 },
    /// A message a newer peer sends that this one does not know: ignored.
    #[serde(other)]
    Unknown,
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, m: &Message) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(m).expect("a message serializes");
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await
}

/// The next line, at most [`MAX_LINE`] bytes; None at the end of the stream.
async fn receive<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Message>, String> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await.map_err(|e| e.to_string())?;
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err("connection closed inside a message".into())
            };
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if line.len() > MAX_LINE {
            return Err(format!("a message longer than {MAX_LINE} bytes"));
        }
        if done {
            return serde_json::from_slice(&line)
                .map(Some)
                .map_err(|e| format!("unreadable message: {e}"));
        }
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// What every task of the site network shares.
#[derive(Debug)]
struct Ctx {
    device_id: String,
    db: Db,
    key: Arc<rustls::sign::CertifiedKey>,
    peers: Arc<RwLock<PeerSet>>,
    /// This device's own passage sequence (None: it records none, a kiosk).
    head: Option<watch::Receiver<u64>>,
    status: watch::Sender<FleetStatus>,
}

impl Ctx {
    fn own_head(&self) -> u64 {
        self.head.as_ref().map_or(0, |h| *h.borrow())
    }

    fn update_peer(&self, id: &str, f: impl FnOnce(&mut PeerStatus)) {
        self.status.send_if_modified(|s| {
            let Some(p) = s.peers.iter_mut().find(|p| p.device_id == id) else {
                return false;
            };
            let before = p.clone();
            f(p);
            *p != before
        });
    }
}

/// Starts the site network in `tasks`, unless `[peers] listen = ""`: it
/// waits for the device key (`gatectl provision`), listens, and follows
/// every peer. The peer set is rebuilt whenever the catalog changes; the
/// whole network starts again with the new key when the device is
/// provisioned again (the central link's session carries the key).
pub fn start(
    config: &Config,
    db: Db,
    head: Option<watch::Receiver<u64>>,
    link: watch::Receiver<crate::central::sync::SyncStatus>,
    mut session: watch::Receiver<Option<Arc<Session>>>,
    status: watch::Sender<FleetStatus>,
    tasks: &mut JoinSet<()>,
) {
    let listen = config.peers.listen.get_ref().clone();
    if listen.is_empty() {
        info!("site network off (peers.listen is empty)");
        return;
    }
    let statics: Vec<StaticPeer> = config
        .peers
        .devices
        .iter()
        .map(|d| d.get_ref().clone())
        .collect();
    let own = config.device_id.get_ref().clone();
    let advertise_cfg = config.peers.advertise.as_ref().map(|a| a.get_ref().clone());
    let central_url = config.central.url.get_ref().clone();
    tasks.spawn(async move {
        if session.borrow().is_none() {
            info!("site network waits for provisioning (no device key yet)");
        }
        let mut key = next_key(&mut session, None).await;
        let addr: SocketAddr = match listen.parse() {
            Ok(a) => a,
            Err(e) => return warn!("site network off: peers.listen {listen}: {e}"),
        };
        // Bound once: a new key must not move the port the others dial.
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => Arc::new(l),
            Err(e) => return warn!("site network off: cannot listen on {addr}: {e}"),
        };
        let Ok(bound) = listener.local_addr() else {
            return;
        };
        let advertised = advertise_cfg.or_else(|| advertise(&central_url, bound));
        loop {
            let public_key = hex::encode(key.verifying_key().as_bytes());
            info!(
                listen = %bound,
                advertised = advertised.as_deref().unwrap_or("none"),
                public_key,
                "site network: listening on {bound}, advertised as {}",
                advertised.as_deref().unwrap_or("nothing (set peers.advertise)")
            );
            let catalog = stored_catalog(&db).await;
            let set = PeerSet::build(&statics, catalog.as_ref(), &own);
            let certified = match tls::certified_key(&key) {
                Ok(k) => k,
                Err(e) => return warn!("site network off: the device key: {e}"),
            };
            let ctx = Arc::new(Ctx {
                device_id: own.clone(),
                db: db.clone(),
                key: certified,
                peers: Arc::new(RwLock::new(set)),
                head: head.clone(),
                status: status.clone(),
            });
            ctx.status.send_modify(|s| {
                s.listening = Some(bound.to_string());
                s.advertised = advertised.clone();
                s.public_key = Some(public_key);
            });
            let server = match tls::server_config(ctx.key.clone(), ctx.peers.clone()) {
                Ok(c) => c,
                Err(e) => return warn!("site network off: TLS: {e}"),
            };
            let mut parts = JoinSet::new();
            parts.spawn(serve(
                listener.clone(),
                tokio_rustls::TlsAcceptor::from(Arc::new(server)),
                ctx.clone(),
            ));
            parts.spawn(follow_all(ctx, statics.clone(), link.clone()));
            let rekeyed = tokio::select! {
                k = next_key(&mut session, Some(key.verifying_key())) => Some(k),
                () = async { while parts.join_next().await.is_some() {} } => None,
            };
            let Some(k) = rekeyed else { return };
            info!("device provisioned again: the site network starts over with the new key");
            // Every connection made under the old key ends with its task.
            parts.shutdown().await;
            key = k;
        }
    });
}

/// The device key of the link's session once it differs from `current`.
async fn next_key(
    session: &mut watch::Receiver<Option<Arc<Session>>>,
    current: Option<ed25519_dalek::VerifyingKey>,
) -> ed25519_dalek::SigningKey {
    loop {
        let key = session
            .borrow_and_update()
            .as_ref()
            .map(|s| s.key().clone())
            .filter(|k| Some(k.verifying_key()) != current);
        if let Some(key) = key {
            return key;
        }
        if session.changed().await.is_err() {
            // The link is gone (gated stopping): keep what runs.
            std::future::pending::<()>().await;
        }
    }
}

/// Without `[peers] advertise`: the bound address if specific, else this
/// device's address on the route to the central system, with the bound port.
fn advertise(central_url: &str, bound: SocketAddr) -> Option<String> {
    if !bound.ip().is_unspecified() {
        return Some(bound.to_string());
    }
    // Connecting a UDP socket picks the route's interface; no packet is sent.
    let url = url::Url::parse(central_url).ok()?;
    let host = url.host_str()?.to_owned();
    let port = url.port_or_known_default()?;
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect((host.as_str(), port)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    Some(SocketAddr::new(ip, bound.port()).to_string())
}

async fn stored_catalog(db: &Db) -> Option<api::Catalog> {
    db.read(|s| crate::central::sync::stored_catalog(s).ok().flatten())
        .await
}

// ---- serving this device's passages ----

async fn serve(listener: Arc<TcpListener>, acceptor: tokio_rustls::TlsAcceptor, ctx: Arc<Ctx>) {
    // Owned here, so the connections end when the server does (a new key).
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = connections.join_next() => continue,
        };
        let (tcp, remote) = match accepted {
            Ok(c) => c,
            Err(e) => {
                warn!("site network: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, ctx) = (acceptor.clone(), ctx.clone());
        connections.spawn(async move {
            if let Err(why) = serve_one(tcp, acceptor, &ctx).await {
                ctx.status.send_modify(|s| s.refused += 1);
                warn!(remote = %remote, "peer connection from {remote} refused: {why}");
            }
        });
    }
}

/// One follower: its handshake, its hello, then this device's passages
/// after its cursor, and each new one as it is committed.
async fn serve_one(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    ctx: &Ctx,
) -> Result<(), String> {
    let tls = tokio::time::timeout(SILENT, acceptor.accept(tcp))
        .await
        .map_err(|_| "no TLS handshake within 5 s".to_owned())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let key = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| tls::ed25519_key(c.as_ref()))
        .ok_or("no device key presented")?;
    let peer = ctx
        .peers
        .read()
        .expect("peer set")
        .by_key(&key)
        .cloned()
        .ok_or("not a device of this site")?;
    let (r, mut w) = tokio::io::split(tls);
    let mut r = BufReader::new(r);
    let hello = tokio::time::timeout(SILENT, receive(&mut r))
        .await
        .map_err(|_| "no hello within 5 s".to_owned())??;
    let mut cursor = match hello {
        Some(Message::Hello { device_id, cursor }) if device_id == peer.device_id => cursor,
        Some(Message::Hello { device_id, .. }) => {
            return Err(format!(
                "says it is {device_id} but holds the key of {}",
                peer.device_id
            ));
        }
        other => return Err(format!("expected a hello, got {other:?}")),
    };
    tracing::debug!(peer = peer.device_id, cursor, "peer following");
    let mut head = ctx.head.clone();
    // The follower only listens; its end of the connection closing ends this.
    let mut closed = Box::pin(async move {
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut r, &mut sink).await;
    });
    loop {
        if !ctx
            .peers
            .read()
            .expect("peer set")
            .peers
            .contains_key(&peer.device_id)
        {
            warn!(
                peer = peer.device_id,
                "peer {} is no longer a device of this site: disconnected", peer.device_id
            );
            return Ok(());
        }
        if let Some(h) = head.as_mut() {
            h.borrow_and_update();
        }
        let own = ctx.device_id.clone();
        let batch = ctx
            .db
            .read(move |s| s.own_passages_after(&own, cursor, BATCH))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(last) = batch.last() {
            cursor = last.seq;
            let m = Message::Passages {
                passages: batch,
                head: ctx.own_head().max(cursor),
            };
            send(&mut w, &m).await.map_err(|e| e.to_string())?;
            continue;
        }
        tokio::select! {
            _ = crate::lane::next_commit(&mut head) => {}
            _ = &mut closed => return Ok(()),
            _ = tokio::time::sleep(PING) => {
                let m = Message::Ping { head: ctx.own_head(), at_ms: now_ms() };
                send(&mut w, &m).await.map_err(|e| e.to_string())?;
            }
        }
    }
}

// ---- following the peers ----

/// One follower task per peer, restarted when the peer set changes.
async fn follow_all(
    ctx: Arc<Ctx>,
    statics: Vec<StaticPeer>,
    mut link: watch::Receiver<crate::central::sync::SyncStatus>,
) {
    let mut version = link.borrow_and_update().catalog_version;
    let mut running: HashMap<String, (Peer, tokio::task::AbortHandle)> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let set = ctx.peers.read().expect("peer set").clone();
        running.retain(|id, (peer, task)| {
            let keep = set.peers.get(id) == Some(peer);
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, peer) in &set.peers {
            if !running.contains_key(id) {
                let handle = tasks.spawn(follow(ctx.clone(), peer.clone()));
                running.insert(id.clone(), (peer.clone(), handle));
            }
        }
        ctx.status.send_modify(|s| {
            s.peers.retain(|p| set.peers.contains_key(&p.device_id));
            for peer in set.peers.values() {
                match s.peers.iter_mut().find(|p| p.device_id == peer.device_id) {
                    Some(p) => p.address = peer.address.clone(),
                    None => s.peers.push(PeerStatus {
                        device_id: peer.device_id.clone(),
                        address: peer.address.clone(),
                        ..PeerStatus::default()
                    }),
                }
            }
            s.peers.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        });
        // Until the catalog changes: then the set is built again.
        let changed = tokio::select! {
            changed = link.wait_for(|s| s.catalog_version != version) => {
                changed.map(|s| s.catalog_version).ok()
            }
            Some(_) = tasks.join_next() => Some(version),
        };
        match changed {
            Some(v) => version = v,
            // The link is gone (gated stopping): the set stays as it is.
            None => std::future::pending::<()>().await,
        }
        let stored = stored_catalog(&ctx.db).await;
        let mut next = PeerSet::build(&statics, stored.as_ref(), &ctx.device_id);
        let mut current = ctx.peers.write().expect("peer set");
        next.remember_revoked(&current);
        if *current != next {
            info!(
                peers = next.peers.len(),
                "site peers updated from the catalog"
            );
            *current = next;
        }
    }
}

/// Follows one peer for ever: connect, catch up from the cursor, stay.
async fn follow(ctx: Arc<Ctx>, peer: Peer) {
    let connector = match tls::client_config(ctx.key.clone(), peer.public_key) {
        Ok(c) => tokio_rustls::TlsConnector::from(Arc::new(c)),
        Err(e) => {
            warn!(peer = peer.device_id, "cannot follow peer: {e}");
            return;
        }
    };
    let mut attempt: u32 = 0;
    let mut complained: Option<String> = None;
    loop {
        let why = match follow_once(&ctx, &peer, &connector, &mut attempt).await {
            Ok(()) => "closed the connection".to_owned(),
            Err(e) => e,
        };
        ctx.update_peer(&peer.device_id, |p| {
            p.reachable = false;
            p.last_error = Some(why.clone());
        });
        if complained.as_deref() != Some(why.as_str()) {
            warn!(
                peer = peer.device_id,
                address = peer.address,
                "peer {} unreachable: {why}",
                peer.device_id
            );
            complained = Some(why);
        }
        attempt = attempt.saturating_add(1);
        // 100 ms, doubling to 3 s, jittered: a peer back up is found quickly.
        let ms = 100u64.saturating_mul(1 << attempt.min(5)).min(3000);
        tokio::time::sleep(crate::central::sync::jitter(Duration::from_millis(ms))).await;
    }
}

async fn follow_once(
    ctx: &Ctx,
    peer: &Peer,
    connector: &tokio_rustls::TlsConnector,
    attempt: &mut u32,
) -> Result<(), String> {
    let tcp = tokio::time::timeout(SILENT, TcpStream::connect(&peer.address))
        .await
        .map_err(|_| "no connection within 5 s".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio::time::timeout(SILENT, connector.connect(tls::server_name(), tcp))
        .await
        .map_err(|_| "no TLS handshake within 5 s".to_owned())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let id = peer.device_id.clone();
    let cursor = ctx
        .db
        .read(move |s| s.peer_cursor(&id))
        .await
        .map_err(|e| e.to_string())?;
    let (r, mut w) = tokio::io::split(tls);
    let mut r = BufReader::new(r);
    let hello = Message::Hello {
        device_id: ctx.device_id.clone(),
        cursor,
    };
    send(&mut w, &hello).await.map_err(|e| e.to_string())?;
    info!(
        peer = peer.device_id,
        cursor, "following peer {} from its passage {cursor}", peer.device_id
    );
    ctx.update_peer(&peer.device_id, |p| {
        p.cursor = cursor;
        p.last_error = None;
    });
    loop {
        let m = tokio::time::timeout(SILENT, receive(&mut r))
            .await
            .map_err(|_| "silent for 5 s".to_owned())??
            .ok_or("closed the connection")?;
        *attempt = 0;
        let head = match m {
            Message::Passages { passages, head } => {
                if let Some(other) = passages.iter().find(|p| p.device_id != peer.device_id) {
                    // A peer speaks for itself only.
                    return Err(format!(
                        "sent a passage of {} (it may send only its own): refused",
                        other.device_id
                    ));
                }
                let id = peer.device_id.clone();
                let next = ctx
                    .db
                    .write(move |s| s.record_from_peer(&id, &passages))
                    .await
                    .map_err(|e| e.to_string())?;
                ctx.update_peer(&peer.device_id, |p| p.cursor = next);
                head
            }
            Message::Ping { head, .. } => head,
            Message::Hello { .. } => return Err("sent a hello to its follower".into()),
            Message::Unknown => continue,
        };
        ctx.update_peer(&peer.device_id, |p| {
            p.reachable = true;
            p.head = head;
            p.last_message_ms = Some(now_ms());
        });
    }
}
