//! S3 users and their access keys, kept in the cluster group (one small,
//! cluster-wide table, like the node registry).
//!
//! A user is a name that owns buckets; it signs requests with any of its
//! access keys. The secret of a key is stored only sealed under the cluster
//! secret (`cairn_service::sealed`, purpose [`SECRET_PURPOSE`], bound to the
//! access key): the metadata service stores and replicates an opaque
//! string, the CLI seals when it creates a key, and the gateway opens it to
//! check signatures. Nothing lists a secret after it was created.

use serde::{Deserialize, Serialize};

/// The `cairn_service::sealed` purpose of users' secret keys.
pub const SECRET_PURPOSE: &str = "cairn s3 secret key";

/// At most this many access keys per user (AWS IAM allows 2; a few more
/// leave room to rotate several clients one at a time).
pub const MAX_KEYS_PER_USER: usize = 4;

/// A user as listed: its keys without their secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub created_ms: u64,
    pub keys: Vec<KeyInfo>,
}

/// An access key as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub access_key: String,
    pub created_ms: u64,
}

/// An access key as the gateway looks it up: whose it is and its sealed
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub access_key: String,
    pub user: String,
    pub sealed_secret: String,
    pub created_ms: u64,
}

/// A key being added: its id and its secret, already sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKey {
    pub access_key: String,
    pub sealed_secret: String,
}

/// A change to the user table. Each is safe to retry: creating what
/// already exists identically, or deleting what is gone, answers as the
/// first attempt did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum UserChange {
    /// A new user with its first key.
    Create { name: String, key: NewKey },
    /// Another key for an existing user.
    AddKey { user: String, key: NewKey },
    /// Removes one key of a user.
    DeleteKey { user: String, access_key: String },
    /// Removes a user and every key it has.
    Delete { name: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error(
        "user name {0:?} is invalid: 1 to 64 of letters, digits and _+=,.@- (as AWS IAM user names)"
    )]
    Name(String),
    #[error("access key {0:?} is invalid: 16 to 128 of A-Z and 0-9")]
    AccessKey(String),
}

/// AWS IAM's user name rule: 1–64 of `[A-Za-z0-9_+=,.@-]`.
pub fn validate_user_name(name: &str) -> Result<(), UserError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(UserError::Name(name.to_owned()))
    }
}

/// Access keys made by `cairn user` are 20 of `[A-Z0-9]`, as AWS's.
pub fn validate_access_key(key: &str) -> Result<(), UserError> {
    let ok = (16..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(UserError::AccessKey(key.to_owned()))
    }
}

impl UserChange {
    /// Checks every name and key the change carries.
    pub fn validate(&self) -> Result<(), UserError> {
        match self {
            UserChange::Create { name, key } | UserChange::AddKey { user: name, key } => {
                validate_user_name(name)?;
                validate_access_key(&key.access_key)
            }
            UserChange::DeleteKey { user, access_key } => {
                validate_user_name(user)?;
                validate_access_key(access_key)
            }
            UserChange::Delete { name } => validate_user_name(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_follow_the_iam_rules() {
        for good in ["alice", "a", "svc.backup@example.com", "ci_runner-2+x=y,z"] {
            validate_user_name(good).expect(good);
        }
        for bad in ["", "has space", "slash/y", "ünï", &"x".repeat(65)] {
            assert!(validate_user_name(bad).is_err(), "{bad:?}");
        }
        validate_access_key("CKABCDEFGHIJKLMNOPQR").expect("20 upper");
        for bad in ["short", "ckabcdefghijklmnopqr", "CKABCDEFGHIJKLMNOP-R"] {
            assert!(validate_access_key(bad).is_err(), "{bad:?}");
        }
    }
}
