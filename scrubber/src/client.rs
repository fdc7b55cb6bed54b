//! Typed client of the scrubber's admin API (used by `cairn scrub` and
//! `cairn repair`).

use cairn_core::node_api::{ErrorBody, SECRET_HEADER};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{JobRecord, JobSpec, RepairStatus};

#[derive(Debug, thiserror::Error)]
pub enum ScrubberClientError {
    #[error("request to {url} failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("scrubber answered {status} {}: {}", .body.code, .body.message)]
    Api { status: u16, body: ErrorBody },
}

#[derive(Debug, Clone)]
pub struct ScrubberClient {
    http: reqwest::Client,
    base: String,
    secret: String,
}

impl ScrubberClient {
    pub fn new(base_url: &str, secret: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base_url.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ScrubberClientError> {
        let url = format!("{}{path}", self.base);
        let transport = |source| ScrubberClientError::Transport {
            url: url.clone(),
            source,
        };
        let mut request = self
            .http
            .request(method, &url)
            .header(SECRET_HEADER, &self.secret);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return response.json().await.map_err(transport);
        }
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(ErrorBody {
            code: "unknown".into(),
            message: text,
            block: None,
        });
        Err(ScrubberClientError::Api {
            status: status.as_u16(),
            body,
        })
    }

    pub async fn create_job(&self, spec: &JobSpec) -> Result<JobRecord, ScrubberClientError> {
        self.send(Method::POST, "/scrub/jobs", Some(spec)).await
    }

    pub async fn jobs(&self) -> Result<Vec<JobRecord>, ScrubberClientError> {
        self.send(Method::GET, "/scrub/jobs", None::<&()>).await
    }

    pub async fn job(&self, id: u64) -> Result<JobRecord, ScrubberClientError> {
        self.send(Method::GET, &format!("/scrub/jobs/{id}"), None::<&()>)
            .await
    }

    pub async fn cancel(&self, id: u64) -> Result<JobRecord, ScrubberClientError> {
        self.send(
            Method::POST,
            &format!("/scrub/jobs/{id}/cancel"),
            None::<&()>,
        )
        .await
    }

    pub async fn repair_status(&self) -> Result<RepairStatus, ScrubberClientError> {
        self.send(Method::GET, "/repair/status", None::<&()>).await
    }
}
