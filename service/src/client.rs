//! The one HTTP client helper every internal client is built on (metadata,
//! storage node, scrubber, heartbeats). It adds the cluster secret, decodes
//! error bodies into typed codes, and puts a deadline on every phase of a
//! call, so that no request path can wait forever on a peer that accepted
//! the connection and then went silent (a hung disk behind a live process,
//! a SIGSTOPped node):
//!
//! - **connect**: the TCP connect;
//! - **request**: a whole small call (JSON in, JSON out); for streamed
//!   calls, the wait for the response headers (after the request body was
//!   sent, for uploads);
//! - **progress**: the longest gap in a streamed body. A download must
//!   deliver its next piece in time; an upload must have its last piece
//!   taken by the peer in time. Only the peer's side counts: an upload whose
//!   *source* is slow (an S3 client trickling its body) is not the peer's
//!   stall and is not cut.
//!
//! reqwest's own `read_timeout` cannot serve here: it also runs while a
//! long upload is being sent, so it would cut a healthy 1 GiB chunk stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::SECRET_HEADER;
use crate::error::{ErrorBody, ErrorCode};
use crate::secret::ClusterSecret;

/// Deadlines of internal calls (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
    pub progress: Duration,
}

impl Timeouts {
    /// Between Cairn services on one network.
    pub const INTERNAL: Self = Self {
        connect: Duration::from_secs(3),
        request: Duration::from_secs(30),
        progress: Duration::from_secs(10),
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::INTERNAL
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("request to {url} failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: no {phase} within {after:?}")]
    Timeout {
        url: String,
        /// What did not arrive: "response", "request body progress", …
        phase: &'static str,
        after: Duration,
    },
    /// A local (Unix socket) exchange failed mid-way.
    #[error("{url}: {source}")]
    Local {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url} answered {status} {}: {}", .body.code, .body.message)]
    Api {
        url: String,
        status: u16,
        body: ErrorBody,
    },
}

impl ClientError {
    /// The typed code of an error answer.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { body, .. } => Some(body.code),
            _ => None,
        }
    }

    /// The leader a `not_leader` answer points to.
    pub fn leader_hint(&self) -> Option<&str> {
        match self {
            Self::Api { body, .. } => body.leader.as_deref(),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The peer could not be reached or did not answer in time (as opposed
    /// to answering with an error).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. } | Self::Timeout { .. } | Self::Local { .. }
        )
    }

    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Transport { source, .. } => source.is_timeout(),
            Self::Local { source, .. } => source.kind() == std::io::ErrorKind::TimedOut,
            Self::Api { .. } => false,
        }
    }
}

/// An authenticated client with deadlines; cheap to clone (one pool).
#[derive(Debug, Clone)]
pub struct HttpClient {
    http: reqwest::Client,
    secret: ClusterSecret,
    timeouts: Timeouts,
}

impl HttpClient {
    /// The deadlines every call of this client has.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    pub fn new(secret: ClusterSecret, timeouts: Timeouts) -> Self {
        Self::with_builder(secret, timeouts, reqwest::Client::builder())
    }

    /// Builds on `builder` (pool sizes, keep-alive); the connect deadline
    /// is set here.
    pub fn with_builder(
        secret: ClusterSecret,
        timeouts: Timeouts,
        builder: reqwest::ClientBuilder,
    ) -> Self {
        crate::tls::install_default_provider();
        let mut builder = builder.connect_timeout(timeouts.connect).tcp_nodelay(true);
        if let Some(tls) = secret.tls() {
            // Mutual TLS with the cluster CA, and nothing in clear text: a
            // peer configured with an `http://` address is an error, not a
            // place to send the cluster secret.
            builder = builder
                .use_preconfigured_tls(tls.client_config().clone())
                .https_only(true);
        }
        let http = builder.build().expect(
            "the HTTP client builds: a TLS provider is installed, any TLS config is prebuilt",
        );
        Self {
            http,
            secret,
            timeouts,
        }
    }

    /// A request carrying the cluster secret; send it with [`Self::send`]
    /// (then read a streamed answer with [`Self::progress_stream`]),
    /// [`Self::json`] or [`Self::send_stream`].
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http
            .request(method, url)
            .header(SECRET_HEADER, self.secret.expose())
    }

    /// A small call: the response, with its body still to read, within the
    /// request deadline. Error answers become [`ClientError::Api`].
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let (url, pending) = self.start(request)?;
        let deadline = self.timeouts.request;
        let response = tokio::time::timeout(deadline, pending)
            .await
            .map_err(|_| timeout(&url, "response", deadline))?
            .map_err(transport(&url))?;
        check(url, response, deadline).await
    }

    /// A small call whose JSON answer is read within the same deadline.
    pub async fn json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        let deadline = self.timeouts.request;
        let (url, pending) = self.start(request)?;
        tokio::time::timeout(deadline, async {
            let response = check(
                url.clone(),
                pending.await.map_err(transport(&url))?,
                deadline,
            )
            .await?;
            response.json::<T>().await.map_err(transport(&url))
        })
        .await
        .map_err(|_| timeout(&url, "response", deadline))?
    }

    /// `method url?query` with an optional JSON body, answered in JSON.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let mut request = self.request(method, url).query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.json(request).await
    }

    /// Sends a streamed request body. The peer must keep taking it (no gap
    /// over the progress deadline while a piece waits on the peer), then
    /// answer within the request deadline.
    pub async fn send_stream<S>(
        &self,
        request: RequestBuilder,
        body: S,
    ) -> Result<Response, ClientError>
    where
        S: Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
    {
        let epoch = Instant::now();
        let watch = Arc::new(UploadWatch::default());
        let body = WatchedBody {
            inner: Box::pin(body),
            watch: watch.clone(),
            epoch,
        };
        let (url, pending) = self.start(request.body(reqwest::Body::wrap_stream(body)))?;
        let Timeouts {
            request: answer_within,
            progress,
            ..
        } = self.timeouts;
        let check_every = (progress / 4).max(Duration::from_millis(10));
        tokio::pin!(pending);
        let response = loop {
            tokio::select! {
                response = &mut pending => break response.map_err(transport(&url))?,
                () = tokio::time::sleep(check_every) => {
                    let now = epoch.elapsed();
                    match watch.state(now) {
                        Upload::StalledOnPeer(gap) if gap > progress => {
                            return Err(timeout(&url, "request body progress", progress));
                        }
                        Upload::Sent(since) if since > answer_within => {
                            return Err(timeout(&url, "response", answer_within));
                        }
                        Upload::NotStarted if now > answer_within => {
                            return Err(timeout(&url, "request start", answer_within));
                        }
                        _ => {}
                    }
                }
            }
        };
        check(url, response, answer_within).await
    }

    /// The body of a response opened with [`Self::send`], streamed, each
    /// piece within the progress deadline.
    pub fn progress_stream(
        &self,
        url: &str,
        response: Response,
    ) -> impl Stream<Item = Result<Bytes, ClientError>> + Send + use<> {
        let progress = self.timeouts.progress;
        let state = (Box::pin(response.bytes_stream()), url.to_owned(), false);
        futures_util::stream::unfold(state, move |(mut body, url, failed)| async move {
            if failed {
                return None;
            }
            let piece = match tokio::time::timeout(progress, body.next()).await {
                Err(_) => Err(timeout(&url, "response body progress", progress)),
                Ok(None) => return None,
                Ok(Some(piece)) => piece.map_err(transport(&url)),
            };
            let failed = piece.is_err();
            Some((piece, (body, url, failed)))
        })
    }

    fn start(
        &self,
        request: RequestBuilder,
    ) -> Result<
        (
            String,
            impl Future<Output = reqwest::Result<Response>> + use<>,
        ),
        ClientError,
    > {
        let (client, request) = request.build_split();
        let request = request.map_err(|source| ClientError::Transport {
            url: "(unbuilt request)".into(),
            source,
        })?;
        let url = request.url().to_string();
        Ok((url, client.execute(request)))
    }
}

/// A non-success answer becomes a typed error (its body read within
/// `deadline`; an unparsable body keeps its text as the message).
async fn check(
    url: String,
    response: Response,
    deadline: Duration,
) -> Result<Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = tokio::time::timeout(deadline, response.text())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or(ErrorBody {
        code: ErrorCode::Unknown,
        message: text,
        block: None,
        leader: None,
    });
    Err(ClientError::Api {
        url,
        status: status.as_u16(),
        body,
    })
}

fn transport(url: &str) -> impl FnOnce(reqwest::Error) -> ClientError + '_ {
    move |source| ClientError::Transport {
        url: url.to_owned(),
        source,
    }
}

fn timeout(url: &str, phase: &'static str, after: Duration) -> ClientError {
    ClientError::Timeout {
        url: url.to_owned(),
        phase,
        after,
    }
}

/// Where an upload stands, as the watchdog sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upload {
    /// The body has not been asked for its first piece yet (the connection
    /// or the request head is still on its way).
    NotStarted,
    /// The body's source has not produced the next piece (not the peer's
    /// fault), or the peer just took a piece.
    Flowing,
    /// A piece was handed over this long ago and the peer has not asked
    /// for the next one.
    StalledOnPeer(Duration),
    /// The whole body was handed over this long ago.
    Sent(Duration),
}

/// Shared between an upload's body and its watchdog; times are
/// milliseconds since the upload started.
#[derive(Debug, Default)]
struct UploadWatch {
    started: AtomicBool,
    waiting_on_peer: AtomicBool,
    since_ms: AtomicU64,
    finished: AtomicBool,
}

impl UploadWatch {
    fn state(&self, now: Duration) -> Upload {
        let since =
            now.saturating_sub(Duration::from_millis(self.since_ms.load(Ordering::Acquire)));
        if !self.started.load(Ordering::Acquire) {
            Upload::NotStarted
        } else if self.finished.load(Ordering::Acquire) {
            Upload::Sent(since)
        } else if self.waiting_on_peer.load(Ordering::Acquire) {
            Upload::StalledOnPeer(since)
        } else {
            Upload::Flowing
        }
    }
}

/// A request body that tells its [`UploadWatch`] whether it is waiting on
/// its source or on the peer.
struct WatchedBody<S> {
    inner: Pin<Box<S>>,
    watch: Arc<UploadWatch>,
    epoch: Instant,
}

impl<S> Stream for WatchedBody<S>
where
    S: Stream<Item = Result<Bytes, io::Error>>,
{
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let watch = &self.watch;
        watch.started.store(true, Ordering::Release);
        match &polled {
            Poll::Pending => watch.waiting_on_peer.store(false, Ordering::Release),
            Poll::Ready(Some(_)) => {
                watch.since_ms.store(now_ms, Ordering::Release);
                watch.waiting_on_peer.store(true, Ordering::Release);
            }
            Poll::Ready(None) => {
                watch.since_ms.store(now_ms, Ordering::Release);
                watch.finished.store(true, Ordering::Release);
            }
        }
        polled
    }
}
