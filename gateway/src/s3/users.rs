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
        let err = users.get_secret_key("mallory").await.expect_err("unknown");
        assert_eq!(*err.code(), s3s::S3ErrorCode::InvalidAccessKeyId);
    }
}
