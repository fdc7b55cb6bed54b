//! A listener that serves plain TCP or TLS behind one type, for
//! `axum::serve`.
//!
//! TLS handshakes run in their own tasks, never in `accept`: a client that
//! connects and then says nothing (a port scanner, a stalled peer, a plain
//! HTTP request to a TLS port) must not hold up the next connection. A
//! handshake that does not finish within [`HANDSHAKE_DEADLINE`] is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const ACCEPTED_BACKLOG: usize = 128;

/// Plain TCP, or TLS with the given server config.
#[derive(Debug)]
pub struct ServiceListener {
    local: SocketAddr,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Plain(TcpListener),
    Tls {
        accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
        acceptor: JoinHandle<()>,
    },
}

impl Drop for ServiceListener {
    fn drop(&mut self) {
        if let Inner::Tls { acceptor, .. } = &self.inner {
            // The socket closes with the task that owns it.
            acceptor.abort();
        }
    }
}

impl ServiceListener {
    /// Serves TLS with `config` when given, else plain TCP. Must be called
    /// inside a Tokio runtime when `config` is given.
    pub fn new(listener: TcpListener, config: Option<Arc<ServerConfig>>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let inner = match config {
            None => Inner::Plain(listener),
            Some(config) => {
                let (tx, accepted) = mpsc::channel(ACCEPTED_BACKLOG);
                let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
                Inner::Tls { accepted, acceptor }
            }
        };
        Ok(Self { local, inner })
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls { .. })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    accepted: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(err) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if accepted.is_closed() {
            return;
        }
        // TLS writes a record per flush; without NODELAY a small response
        // after a large one waits for the peer's delayed ACK.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let accepted = accepted.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = accepted.send((stream, peer)).await;
                }
                Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for ServiceListener {
    type Io = Either<TcpStream, TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match &mut self.inner {
            Inner::Plain(listener) => {
                let (tcp, peer) = axum::serve::Listener::accept(listener).await;
                (Either::Left(tcp), peer)
            }
            Inner::Tls { accepted, .. } => match accepted.recv().await {
                Some((tls, peer)) => (Either::Right(tls), peer),
                // The accept task ended (only when this listener is being
                // dropped): never hand out another connection.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Who is on the other end of a connection: its address, and whether it
/// presented a certificate the listener verified (always false on a plain
/// listener). Use with `into_make_service_with_connect_info::<PeerIdentity>()`.
#[derive(Debug, Clone, Copy)]
pub struct PeerIdentity {
    pub addr: SocketAddr,
    pub certified: bool,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, ServiceListener>>
    for PeerIdentity
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, ServiceListener>) -> Self {
        let certified = match stream.io() {
            Either::Left(_) => false,
            Either::Right(tls) => tls.get_ref().1.peer_certificates().is_some(),
        };
        Self {
            addr: *stream.remote_addr(),
            certified,
        }
    }
}
