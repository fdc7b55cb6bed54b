//! Where a service's listeners come from, and how it says where it listens.
//!
//! A supervisor that must own its ports (`cairn dev`, or systemd socket
//! activation) binds them itself and hands them down as inherited file
//! descriptors, following systemd's protocol: `LISTEN_FDS=n`, descriptors
//! 3..3+n, in the order the service documents (the gateway: S3, then admin).
//! Then no port can be taken by anything else between "chosen" and "bound".
//! Without inherited descriptors a service binds its configured address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("bind {what} on {addr}: {source}")]
    Bind {
        what: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("inherited listener {index} ({what}): {source}")]
    Inherited {
        what: String,
        index: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("write address file {path}: {source}")]
    AddrFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The listeners a supervisor handed to this process, taken in order.
pub struct Listeners {
    inherited: listenfd::ListenFd,
    next: usize,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("inherited", &self.inherited.len())
            .field("next", &self.next)
            .finish()
    }
}

impl Listeners {
    /// Takes the inherited descriptors (and clears `LISTEN_FDS`, so that
    /// processes this one starts do not believe they inherit them too).
    pub fn from_env() -> Self {
        Self {
            inherited: listenfd::ListenFd::from_env(),
            next: 0,
        }
    }

    /// How many listeners were handed down.
    pub fn inherited(&self) -> usize {
        self.inherited.len()
    }

    /// The next inherited listener, or else a new one bound to `addr`.
    /// `what` names it in errors ("S3 API", "admin").
    pub async fn next(&mut self, what: &str, addr: SocketAddr) -> Result<TcpListener, ListenError> {
        let index = self.next;
        self.next += 1;
        let inherited_error = |source| ListenError::Inherited {
            what: what.to_owned(),
            index,
            source,
        };
        if let Some(listener) = self
            .inherited
            .take_tcp_listener(index)
            .map_err(inherited_error)?
        {
            listener.set_nonblocking(true).map_err(inherited_error)?;
            let listener = TcpListener::from_std(listener).map_err(inherited_error)?;
            tracing::info!(what, addr = ?listener.local_addr().ok(), "listening on an inherited socket");
            return Ok(listener);
        }
        TcpListener::bind(addr)
            .await
            .map_err(|source| ListenError::Bind {
                what: what.to_owned(),
                addr,
                source,
            })
    }
}

/// Writes the bound address(es) to `path` atomically (temp file, rename),
/// so a supervisor polling for it never reads half an address.
pub fn write_addr_file(path: &Path, addr: impl std::fmt::Display) -> Result<(), ListenError> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, addr.to_string())
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|source| ListenError::AddrFile {
            path: path.to_owned(),
            source,
        })
}
