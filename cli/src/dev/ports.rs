//! The listening sockets of a dev cluster, bound by `cairn dev` itself
//! before it starts any process.
//!
//! The S3, gateway-admin, metadata and scrubber ports are fixed (from
//! `--port`), while the storage nodes take ports the OS picks. If the fixed
//! ports were bound by the services themselves, a node started earlier (of
//! this cluster or another one) could take one of them in between, and the
//! service would die at start-up with "address in use". So every fixed port
//! is bound here first, and each socket is handed to its service as an
//! inherited descriptor (`LISTEN_FDS`, see `cairn_service::listen`).

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::OwnedFd;

use super::DevError;

/// The four listeners a dev cluster owns. `--port 0` lets the OS pick each.
#[derive(Debug)]
pub(crate) struct Ports {
    pub(crate) s3: TcpListener,
    pub(crate) admin: TcpListener,
    /// One per metadata replica.
    pub(crate) meta: Vec<TcpListener>,
    /// Kept for the cluster's whole life: a restarted scrubber gets this
    /// same socket again (connections wait in its backlog meanwhile).
    pub(crate) scrubber: TcpListener,
}

impl Ports {
    /// Binds S3 on `port`, the gateway admin on `port + 1`, the scrubber
    /// on `port + 3`, and metadata replica i (from 1) on `meta[i - 1]`: the
    /// address the data dir was created with, or `port + 2` for the first
    /// and `port + 2 + i` for the others (`port + 4`, `port + 5`, …).
    pub(crate) fn bind(
        host: IpAddr,
        port: u16,
        meta: &[Option<SocketAddr>],
    ) -> Result<Self, DevError> {
        let at = |offset: u16| {
            let port = if port == 0 { 0 } else { port + offset };
            SocketAddr::new(host, port)
        };
        let flag = |offset: u16| match offset {
            0 => "choose another --port".to_owned(),
            n => format!("it is --port + {n}; choose another --port"),
        };
        Ok(Self {
            s3: bind("the S3 API", at(0), flag(0))?,
            admin: bind("the gateway admin listener", at(1), flag(1))?,
            meta: meta
                .iter()
                .enumerate()
                .map(|(index, previous)| {
                    let offset = if index == 0 { 2 } else { 3 + index as u16 };
                    match previous {
                        Some(addr) => bind(
                            "a metadata replica",
                            *addr,
                            "this data dir's replicas know each other by that address; free it, or start a new --data-dir"
                                .into(),
                        ),
                        None => bind("a metadata replica", at(offset), flag(offset)),
                    }
                })
                .collect::<Result<_, _>>()?,
            scrubber: bind("the scrubber", at(3), flag(3))?,
        })
    }
}

fn bind(what: &'static str, addr: SocketAddr, hint: String) -> Result<TcpListener, DevError> {
    TcpListener::bind(addr).map_err(|source| DevError::Port {
        what,
        addr,
        hint,
        source,
    })
}

/// The address a listener is bound to.
pub(crate) fn addr(listener: &TcpListener) -> Result<SocketAddr, DevError> {
    listener
        .local_addr()
        .map_err(super::io("read a bound address"))
}

/// A descriptor of `listener` to hand to a child (the parent keeps its own).
pub(crate) fn handoff(listener: &TcpListener) -> Result<OwnedFd, DevError> {
    listener
        .try_clone()
        .map(OwnedFd::from)
        .map_err(super::io("duplicate a listening socket"))
}
