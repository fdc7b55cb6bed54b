//! S3 users: access key → secret key. An unknown key is refused with
//! `InvalidAccessKeyId`, as S3 does (s3s's `SimpleAuth` says `NotSignedUp`).

use std::collections::HashMap;

use s3s::S3Result;
use s3s::auth::{S3Auth, SecretKey};

use crate::config::Credential;

#[derive(Debug, Default)]
pub struct Users {
    secrets: HashMap<String, SecretKey>,
}

impl Users {
    pub fn new(credentials: &[Credential]) -> Self {
        Self {
            secrets: credentials
                .iter()
                .map(|c| (c.access_key.clone(), SecretKey::from(c.secret_key.clone())))
                .collect(),
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for Users {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.secrets.get(access_key).cloned().ok_or_else(|| {
            s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )
        })
    }
}
