//! A minimal S3 client for the load generator: PUT, GET (hashed while
//! streaming), LIST, DELETE, create bucket, path-style, SigV4 signed.

use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};

use super::Payload;
use super::sigv4::{SignInput, sign, uri_encode};

#[derive(Debug, Clone)]
pub struct S3Target {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// For an HTTPS endpoint whose certificate is not from a public CA.
    pub tls: Option<rustls::ClientConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum S3Failure {
    #[error("{0}")]
    Transport(#[from] reqwest::Error),
    #[error("HTTP {status}: {body}")]
    Status { status: StatusCode, body: String },
}

#[derive(Debug, Clone)]
pub struct S3Client {
    http: reqwest::Client,
    target: S3Target,
    host: String,
}

impl S3Client {
    pub fn new(target: S3Target) -> Self {
        let host = target
            .endpoint
            .trim_end_matches('/')
            .split("://")
            .nth(1)
            .unwrap_or(&target.endpoint)
            .to_owned();
        cairn_service::tls::install_default_provider();
        let mut builder = reqwest::Client::builder().pool_max_idle_per_host(256);
        if let Some(tls) = &target.tls {
            builder = builder.use_preconfigured_tls(tls.clone());
        }
        Self {
            http: builder.build().expect("an HTTP client"),
            target,
            host,
        }
    }

    fn request(
        &self,
        method: Method,
        bucket: &str,
        key: Option<&str>,
        query: &[(String, String)],
    ) -> reqwest::RequestBuilder {
        let path = match key {
            Some(key) => format!("/{}/{}", uri_encode(bucket, false), uri_encode(key, true)),
            None => format!("/{}", uri_encode(bucket, false)),
        };
        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let headers = sign(&SignInput {
            method: method.as_str(),
            host: &self.host,
            path: &path,
            query,
            access_key: &self.target.access_key,
            secret_key: &self.target.secret_key,
            region: &self.target.region,
            unix_secs,
        });
        let query_string = query
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
            .collect::<Vec<_>>()
            .join("&");
        let url = if query_string.is_empty() {
            format!("{}{path}", self.target.endpoint.trim_end_matches('/'))
        } else {
            format!(
                "{}{path}?{query_string}",
                self.target.endpoint.trim_end_matches('/')
            )
        };
        let mut builder = self.http.request(method, url);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder
    }

    async fn check(response: reqwest::Response) -> Result<reqwest::Response, S3Failure> {
        if response.status().is_success() {
            Ok(response)
        } else {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            Err(S3Failure::Status { status, body })
        }
    }

    /// Creates the bucket; an existing bucket of ours is fine.
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), S3Failure> {
        let response = self.request(Method::PUT, bucket, None, &[]).send().await?;
        if response.status() == StatusCode::CONFLICT {
            return Ok(());
        }
        Self::check(response).await.map(drop)
    }

    /// PUTs an object sent as `payload`'s pieces, with its Content-Length
    /// (S3 refuses a PUT without one).
    pub async fn put(&self, bucket: &str, key: &str, payload: Payload) -> Result<(), S3Failure> {
        let pieces =
            futures_util::stream::iter(payload.pieces.into_iter().map(Ok::<_, std::io::Error>));
        self.put_body(bucket, key, payload.len, reqwest::Body::wrap_stream(pieces))
            .await
    }

    /// PUTs an object of declared length `len` from any body (tests send
    /// bodies that stall).
    pub async fn put_body(
        &self,
        bucket: &str,
        key: &str,
        len: u64,
        body: reqwest::Body,
    ) -> Result<(), S3Failure> {
        let response = self
            .request(Method::PUT, bucket, Some(key), &[])
            .header("content-length", len)
            .body(body)
            .send()
            .await?;
        Self::check(response).await.map(drop)
    }

    /// A GET's successful response, its body not read yet.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<reqwest::Response, S3Failure> {
        Self::check(
            self.request(Method::GET, bucket, Some(key), &[])
                .send()
                .await?,
        )
        .await
    }

    /// Streams the object, returning its length and blake3.
    pub async fn get_hashed(&self, bucket: &str, key: &str) -> Result<(u64, [u8; 32]), S3Failure> {
        let response = self.get(bucket, key).await?;
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        let mut body = response.bytes_stream();
        while let Some(piece) = body.next().await {
            let piece = piece?;
            len += piece.len() as u64;
            hasher.update(&piece);
        }
        Ok((len, *hasher.finalize().as_bytes()))
    }

    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Failure> {
        let response = self
            .request(Method::DELETE, bucket, Some(key), &[])
            .send()
            .await?;
        Self::check(response).await.map(drop)
    }

    /// One ListObjectsV2 page; returns the keys listed.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        max_keys: u32,
    ) -> Result<usize, S3Failure> {
        let query = [
            ("list-type".to_owned(), "2".to_owned()),
            ("max-keys".to_owned(), max_keys.to_string()),
            ("prefix".to_owned(), prefix.to_owned()),
        ];
        let response = Self::check(
            self.request(Method::GET, bucket, None, &query)
                .send()
                .await?,
        )
        .await?;
        let text = response.text().await?;
        Ok(text.matches("<Key>").count())
    }
}
