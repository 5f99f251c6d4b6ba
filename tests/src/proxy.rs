//! A TCP proxy a test controls: the site network between devices, cut and
//! healed for real (connections refused and torn down), or made to change
//! a byte in flight, or to record what a client sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Bytes go through.
    Up,
    /// New connections are refused. (Setting any mode closes the open ones.)
    Cut,
    /// Bytes from the server after its first `after` bytes on a connection
    /// have one bit flipped (once per connection).
    Tamper { after: usize },
}

/// A proxy on 127.0.0.1 to a target set later.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    target: watch::Sender<Option<SocketAddr>>,
    link: watch::Sender<Link>,
    /// What clients sent, per connection, in order.
    recorded: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy listens");
        let addr = listener.local_addr().expect("proxy address");
        let target = watch::Sender::new(None);
        let link = watch::Sender::new(Link::Up);
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let (t, l, r) = (target.subscribe(), link.subscribe(), recorded.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let (to, link, rec) = (*t.borrow(), l.clone(), r.clone());
                let mode = *link.borrow();
                let Some(to) = to else { continue };
                if mode == Link::Cut {
                    continue;
                }
                tokio::spawn(relay(client, to, link, rec));
            }
        });
        Proxy {
            addr,
            target,
            link,
            recorded,
            task,
        }
    }

    pub fn set_target(&self, to: SocketAddr) {
        self.target.send_replace(Some(to));
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }

    /// What clients sent on each connection so far.
    pub fn recorded(&self) -> Vec<Vec<u8>> {
        self.recorded.lock().unwrap().clone()
    }
}

async fn relay(
    client: TcpStream,
    to: SocketAddr,
    mut link: watch::Receiver<Link>,
    recorded: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    let Ok(server) = TcpStream::connect(to).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let index = {
        let mut r = recorded.lock().unwrap();
        r.push(Vec::new());
        r.len() - 1
    };
    link.borrow_and_update();
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let tamper = match *link.borrow() {
        Link::Tamper { after } => Some(after),
        _ => None,
    };
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            recorded.lock().unwrap()[index].extend_from_slice(&buf[..n]);
            if sw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        let (mut seen, mut flipped) = (0usize, false);
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if let Some(after) = tamper
                && !flipped
                && seen + n > after
            {
                let i = after.saturating_sub(seen).min(n - 1);
                buf[i] ^= 0x01;
                flipped = true;
            }
            seen += n;
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Any change of mode tears the connection down: new ones get the new mode.
    let cut = async {
        let _ = link.changed().await;
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = cut => {}
    }
}
