//! The operator console: a web UI on the gateway's admin listener
//! (`/console/`), behind a login with the cluster secret. Its pages poll
//! the JSON under `/console/api/` every two seconds; the assets are
//! compiled into the binary (nothing is fetched from anywhere at run time).
//!
//! The console shows what the cluster already knows: the node registry and
//! its change feed, the metadata replicas, the catalogue's reverse index
//! against liveness (`census`), the scrubber's repair counters and scrub
//! jobs, and the gateway's own request metrics sampled into an hour of
//! history (`history`). It changes only what the CLI can: scrub jobs.

mod api;
mod assets;
mod auth;
mod census;
mod history;

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use cairn_scrubber_api::ScrubberClient;
use cairn_service::ClusterSecret;
use cairn_service::tasks::CancellationToken;
use cairn_service::tasks::pause;

use crate::backend::Backend;

pub(crate) use auth::ADMIN_USER;

/// The storage classes this gateway writes, for the durability page.
#[derive(Debug, Clone)]
pub struct Classes {
    pub k: usize,
    pub m: usize,
    pub inline_max: u64,
    /// Upper size and copies of replicated blobs.
    pub replicated: Option<(u64, usize)>,
}

impl Classes {
    /// Chunk count → what the codes written here need.
    fn known_shapes(&self) -> HashMap<usize, census::Shape> {
        let mut widths = HashMap::from([(
            self.k + self.m,
            census::Shape {
                k: self.k,
                tolerated: self.m,
            },
        )]);
        if let Some((_, copies)) = self.replicated {
            widths.insert(
                copies,
                census::Shape {
                    k: 1,
                    tolerated: copies - 1,
                },
            );
        }
        widths
    }
}

#[derive(Debug)]
pub struct Inner {
    /// The catalogue client and the request metrics are the backend's.
    backend: Arc<Backend>,
    scrubber: Option<ScrubberClient>,
    secret: ClusterSecret,
    classes: Classes,
    /// Cookies get `Secure` when the admin listener speaks TLS.
    over_tls: bool,
    sessions: auth::Sessions,
    history: history::History,
    /// The last census, when it was taken and how long it took: pages
    /// polling at once share one.
    census: tokio::sync::Mutex<Option<census::Taken>>,
    /// The newest node state changes, and the last sequence read: the feed
    /// is read forward from there, never again from its start.
    events: tokio::sync::Mutex<RecentEvents>,
}

#[derive(Debug, Default)]
struct RecentEvents {
    after: u64,
    newest: std::collections::VecDeque<cairn_meta_api::model::NodeEvent>,
}

/// What every console handler shares.
#[derive(Debug, Clone)]
pub struct ConsoleState(Arc<Inner>);

impl Inner {
    fn meta(&self) -> &cairn_meta_api::MetaClient {
        &self.backend.meta
    }
}

impl Deref for ConsoleState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl ConsoleState {
    pub fn new(
        backend: Arc<Backend>,
        scrubber_url: Option<&str>,
        secret: &ClusterSecret,
        classes: Classes,
    ) -> Self {
        Self(Arc::new(Inner {
            backend,
            scrubber: scrubber_url.map(|url| ScrubberClient::new(url, secret)),
            secret: secret.clone(),
            classes,
            over_tls: secret.tls().is_some(),
            sessions: auth::Sessions::default(),
            history: history::History::default(),
            census: tokio::sync::Mutex::new(None),
            events: tokio::sync::Mutex::new(RecentEvents::default()),
        }))
    }

    /// The console's routes: the pages and assets are public (they hold no
    /// data), every `/console/api/` call but login needs a session.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/session", get(api::session))
            .route("/cluster", get(api::cluster))
            .route("/durability", get(api::durability))
            .route("/repair", get(api::repair))
            .route("/scrub", get(api::scrub_jobs).post(api::schedule_scrub))
            .route("/scrub/{id}/cancel", post(api::cancel_scrub))
            .route("/buckets", get(api::buckets))
            .route("/objects", get(api::objects))
            .route("/object", get(api::object))
            .route("/traffic", get(api::traffic))
            .route("/logout", post(auth::logout))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                auth::require_session,
            ))
            .route("/login", post(auth::login))
            .layer(axum::middleware::map_response(api::no_store));
        Router::new()
            .route("/", get(assets::to_console))
            .route("/console", get(assets::to_console))
            .route("/favicon.ico", get(assets::no_icon))
            .route("/console/", get(assets::index))
            .route("/console/{asset}", get(assets::asset))
            .nest("/console/api", api)
            .with_state(self.clone())
    }

    /// Samples the history every few seconds until `stop`.
    pub async fn sample(self, stop: CancellationToken) {
        loop {
            let repair = match &self.scrubber {
                Some(scrubber) => match scrubber.repair_status().await {
                    Ok(status) => Some(status),
                    Err(err) => {
                        tracing::debug!(%err, "console: scrubber did not answer");
                        None
                    }
                },
                None => None,
            };
            self.history.record(&self.backend.metrics, repair, now_ms());
            if !pause(&stop, history::SAMPLE_EVERY).await {
                return;
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
