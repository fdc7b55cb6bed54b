//! A TCP proxy in front of a test node: a stable address across restarts,
//! and a switch that freezes the node's API without touching the node. It
//! can also hold every answer for a while (requests pass on time): a
//! service slow to answer, as its caller sees it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug)]
pub(crate) struct Proxy {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    hung: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Proxy {
    pub(crate) async fn start() -> Self {
        Self::start_with_answer_delay(Duration::ZERO).await
    }

    /// A proxy that passes requests at once and holds each piece of an
    /// answer for `delay` (see `pump`).
    pub(crate) async fn start_with_answer_delay(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let target = Arc::new(Mutex::new(None));
        let (hung, _) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, target.clone(), hung.clone(), delay));
        Self {
            addr,
            target,
            hung,
            accept,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where new connections go.
    pub(crate) fn set_target(&self, target: SocketAddr) {
        *self.target.lock().expect("proxy target") = Some(target);
    }

    /// While hung, bytes already accepted are held and nothing more moves
    /// in either direction.
    pub(crate) fn hang(&self, hung: bool) {
        self.hung.send_replace(hung);
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: Arc<Mutex<Option<SocketAddr>>>,
    hung: watch::Sender<bool>,
    answer_delay: Duration,
) {
    while let Ok((inbound, _)) = listener.accept().await {
        let Some(target) = *target.lock().expect("proxy target") else {
            continue;
        };
        let hung = hung.subscribe();
        tokio::spawn(async move {
            // A node that is down refuses: drop the inbound side too.
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            tokio::join!(
                pump(in_read, out_write, hung.clone(), Duration::ZERO),
                pump(out_read, in_write, hung, answer_delay)
            );
        });
    }
}

/// Copies `from` to `to`, holding each piece read for `delay` before
/// passing it on (the pieces of one answer add up: meant for small
/// answers, such as a heartbeat's) and while the proxy is hung.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut hung: watch::Receiver<bool>,
    delay: Duration,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if hung.wait_for(|hung| !*hung).await.is_err() {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
