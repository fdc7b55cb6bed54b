//! S3 users: access key → secret key and the user it signs for.
//!
//! Two sources: the gateway config's `[[credentials]]` (each access key is
//! its own user, named by the key: the bootstrap administrators and
//! single-process setups), then the catalogue's user table made with
//! `cairn user` (`cairn_meta_api::users`), whose secrets arrive sealed
//! under the cluster secret and are opened here. Catalogue answers are
//! cached: a found key for [`FOUND_TTL`] (so a deleted key stops working
//! within that long), an unknown one for [`MISSING_TTL`] (so a client
//! retrying a wrong key does not make every retry a metadata read).
//!
//! An unknown key is refused with `InvalidAccessKeyId`, as S3 does (s3s's
//! `SimpleAuth` says `NotSignedUp`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_meta_api::users::{SECRET_PURPOSE, validate_access_key};
use cairn_service::ClusterSecret;
use s3s::S3Result;
use s3s::auth::{S3Auth, SecretKey};

use crate::backend::Backend;
use crate::config::Credential;

/// How long a key found in the catalogue is trusted without asking again.
const FOUND_TTL: Duration = Duration::from_secs(5);
/// How long "no such key" is remembered.
const MISSING_TTL: Duration = Duration::from_secs(1);
/// Past this many cached answers the cache starts over (unknown keys are
/// cached too, and anyone can send those).
const CACHE_LIMIT: usize = 10_000;

/// Cheap to clone: the S3 service's auth and the access check share one.
#[derive(Debug, Clone, Default)]
pub struct Users {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Access key → (its secret, itself as the user it signs for).
    configured: HashMap<String, (SecretKey, Arc<str>)>,
    catalogue: Option<Catalogue>,
}

#[derive(Debug)]
struct Catalogue {
    /// Its metadata client.
    backend: Arc<Backend>,
    secret: ClusterSecret,
    cache: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    at: Instant,
    found: Option<Found>,
}

#[derive(Debug, Clone)]
struct Found {
    user: Arc<str>,
    secret: SecretKey,
}

impl Users {
    /// Only the configured credentials.
    pub fn new(credentials: &[Credential]) -> Self {
        Self::with_catalogue(credentials, None)
    }

    /// The configured credentials, then the catalogue's users (their
    /// secrets sealed under `secret`).
    pub fn with_catalogue(
        credentials: &[Credential],
        catalogue: Option<(Arc<Backend>, ClusterSecret)>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                configured: credentials
                    .iter()
                    .map(|c| {
                        let secret = SecretKey::from(c.secret_key.clone());
                        (
                            c.access_key.clone(),
                            (secret, Arc::from(c.access_key.as_str())),
                        )
                    })
                    .collect(),
                catalogue: catalogue.map(|(backend, secret)| Catalogue {
                    backend,
                    secret,
                    cache: Mutex::default(),
                }),
            }),
        }
    }

    /// Whether a user of this name exists (a configured key, or a user of
    /// the catalogue's table).
    pub async fn exists(&self, name: &str) -> S3Result<bool> {
        if self.inner.configured.contains_key(name) {
            return Ok(true);
        }
        let Some(catalogue) = &self.inner.catalogue else {
            return Ok(false);
        };
        let users = catalogue.backend.meta.users().await.map_err(|err| {
            tracing::warn!(%err, "user table unreadable");
            s3s::s3_error!(ServiceUnavailable, "cannot read the user table right now")
        })?;
        Ok(users.iter().any(|u| u.name == name))
    }

    /// The user an access key (one that just signed a request) signs for.
    /// Configured keys are their own user.
    pub fn user_of(&self, access_key: &str) -> Arc<str> {
        if let Some((_, user)) = self.inner.configured.get(access_key) {
            return user.clone();
        }
        self.inner
            .catalogue
            .as_ref()
            .and_then(|c| {
                let cache = c.cache.lock().expect("user cache");
                cache
                    .get(access_key)
                    .and_then(|cached| cached.found.as_ref())
                    .map(|found| found.user.clone())
            })
            // Not reachable after a successful signature check (which
            // cached the key); the key is at least a stable identity.
            .unwrap_or_else(|| access_key.into())
    }
}

fn unknown_key() -> s3s::S3Error {
    s3s::s3_error!(
        InvalidAccessKeyId,
        "The AWS Access Key Id you provided does not exist in our records."
    )
}

impl Catalogue {
    fn cached(&self, access_key: &str) -> Option<Option<Found>> {
        let cache = self.cache.lock().expect("user cache");
        let cached = cache.get(access_key)?;
        let ttl = if cached.found.is_some() {
            FOUND_TTL
        } else {
            MISSING_TTL
        };
        (cached.at.elapsed() < ttl).then(|| cached.found.clone())
    }

    async fn lookup(&self, access_key: &str) -> S3Result<Option<Found>> {
        if let Some(answer) = self.cached(access_key) {
            return Ok(answer);
        }
        let lookups = &self.backend.metrics.user_lookups;
        let record = self
            .backend
            .meta
            .access_key(access_key)
            .await
            .map_err(|err| {
                lookups.with_label_values(&["error"]).inc();
                tracing::warn!(%err, "access key lookup failed");
                s3s::s3_error!(ServiceUnavailable, "cannot check the access key right now")
            })?;
        let result = if record.is_some() { "found" } else { "unknown" };
        lookups.with_label_values(&[result]).inc();
        let found = match record {
            Some(record) => {
                let plain = cairn_service::sealed::open(
                    &self.secret,
                    SECRET_PURPOSE,
                    &record.access_key,
                    &record.sealed_secret,
                )
                .map_err(|err| {
                    // Never the secret itself: only that it would not open.
                    tracing::error!(access_key, %err, "sealed secret key does not open");
                    s3s::s3_error!(InternalError, "cannot open this access key's secret")
                })?;
                let text = String::from_utf8(plain.to_vec())
                    .map_err(|_| s3s::s3_error!(InternalError, "secret key is not text"))?;
                Some(Found {
                    user: record.user.into(),
                    secret: SecretKey::from(text),
                })
            }
            None => None,
        };
        let mut cache = self.cache.lock().expect("user cache");
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(
            access_key.to_owned(),
            Cached {
                at: Instant::now(),
                found: found.clone(),
            },
        );
        Ok(found)
    }
}

#[async_trait::async_trait]
impl S3Auth for Users {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if let Some((secret, _)) = self.inner.configured.get(access_key) {
            return Ok(secret.clone());
        }
        let Some(catalogue) = &self.inner.catalogue else {
            return Err(unknown_key());
        };
        // Only well-formed keys reach the metadata service (and its URL).
        if validate_access_key(access_key).is_err() {
            return Err(unknown_key());
        }
        match catalogue.lookup(access_key).await? {
            Some(found) => Ok(found.secret),
            None => Err(unknown_key()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn several_users_and_unknown_keys_are_refused_as_s3_does() {
        let users = Users::new(&[
            Credential {
                access_key: "alice".into(),
                secret_key: "alice-secret".into(),
            },
            Credential {
                access_key: "bob".into(),
                secret_key: "bob-secret".into(),
            },
        ]);
        assert_eq!(
            users.get_secret_key("alice").await.expect("alice").expose(),
            "alice-secret"
        );
        assert_eq!(
            users.get_secret_key("bob").await.expect("bob").expose(),
            "bob-secret"
        );
        assert_eq!(&*users.user_of("bob"), "bob");
        let err = users.get_secret_key("mallory").await.expect_err("unknown");
        assert_eq!(*err.code(), s3s::S3ErrorCode::InvalidAccessKeyId);
    }
}
