//! Typed client of the scrubber's admin API (used by `cairn scrub` and
//! `cairn repair`).

use cairn_service::{ClientError, ClusterSecret, HttpClient, Timeouts};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{JobRecord, JobSpec, RebalancePlan, RebalanceStatus, RepairStatus};

#[derive(Debug, Clone)]
pub struct ScrubberClient {
    http: HttpClient,
    base: String,
}

impl ScrubberClient {
    pub fn new(base_url: &str, secret: &ClusterSecret) -> Self {
        Self {
            http: HttpClient::new(secret.clone(), Timeouts::INTERNAL),
            base: base_url.trim_end_matches('/').to_owned(),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        self.http.call(method, &url, &[], body).await
    }

    pub async fn create_job(&self, spec: &JobSpec) -> Result<JobRecord, ClientError> {
        self.call(Method::POST, "/scrub/jobs", Some(spec)).await
    }

    pub async fn jobs(&self) -> Result<Vec<JobRecord>, ClientError> {
        self.call(Method::GET, "/scrub/jobs", None::<&()>).await
    }

    pub async fn job(&self, id: u64) -> Result<JobRecord, ClientError> {
        self.call(Method::GET, &format!("/scrub/jobs/{id}"), None::<&()>)
            .await
    }

    pub async fn cancel(&self, id: u64) -> Result<JobRecord, ClientError> {
        self.call(
            Method::POST,
            &format!("/scrub/jobs/{id}/cancel"),
            None::<&()>,
        )
        .await
    }

    pub async fn repair_status(&self) -> Result<RepairStatus, ClientError> {
        self.call(Method::GET, "/repair/status", None::<&()>).await
    }

    /// Plans a rebalance and queues its moves.
    pub async fn rebalance(&self) -> Result<RebalancePlan, ClientError> {
        self.call(Method::POST, "/rebalance", None::<&()>).await
    }

    pub async fn rebalance_status(&self) -> Result<RebalanceStatus, ClientError> {
        self.call(Method::GET, "/rebalance", None::<&()>).await
    }

    /// Drops the queued moves (those in progress finish).
    pub async fn cancel_rebalance(&self) -> Result<RebalanceStatus, ClientError> {
        self.call(Method::POST, "/rebalance/cancel", None::<&()>)
            .await
    }
}
