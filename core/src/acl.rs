//! S3 access control lists and Object Ownership, as data: who holds which
//! permission on a bucket or an object version. Evaluation order (bucket
//! policy first, owners, then ACLs) lives in the gateway's access check;
//! here is only what a list grants.
//!
//! Grantees are users by their canonical id (a Cairn user name) or S3's
//! groups. An absent list means "private": the owner's full control.

use serde::{Deserialize, Serialize};

/// S3's Object Ownership of a bucket. New buckets are
/// `BucketOwnerEnforced` (ACLs off), as on S3 since 2023.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectOwnership {
    /// ACLs are disabled; the bucket owner owns every object.
    #[default]
    BucketOwnerEnforced,
    /// ACLs work; an object written with `bucket-owner-full-control` is
    /// owned by the bucket owner, others by their writer.
    BucketOwnerPreferred,
    /// ACLs work; every object is owned by its writer.
    ObjectWriter,
    /// The ownership controls were deleted: ObjectWriter's behaviour, and
    /// GetBucketOwnershipControls answers 404.
    Unset,
}

impl ObjectOwnership {
    pub fn acls_enabled(self) -> bool {
        self != Self::BucketOwnerEnforced
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub grants: Vec<Grant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Grantee {
    User {
        id: String,
    },
    /// Everyone, signed in or not.
    AllUsers,
    /// Every signed-in user.
    AuthenticatedUsers,
    /// S3's log delivery group (no Cairn user is in it).
    LogDelivery,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    FullControl,
    Read,
    Write,
    ReadAcp,
    WriteAcp,
}

/// S3's group URIs.
pub const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
pub const AUTHENTICATED_USERS_URI: &str =
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
pub const LOG_DELIVERY_URI: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

impl Grantee {
    pub fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            ALL_USERS_URI => Some(Self::AllUsers),
            AUTHENTICATED_USERS_URI => Some(Self::AuthenticatedUsers),
            LOG_DELIVERY_URI => Some(Self::LogDelivery),
            _ => None,
        }
    }

    pub fn uri(&self) -> Option<&'static str> {
        match self {
            Self::User { .. } => None,
            Self::AllUsers => Some(ALL_USERS_URI),
            Self::AuthenticatedUsers => Some(AUTHENTICATED_USERS_URI),
            Self::LogDelivery => Some(LOG_DELIVERY_URI),
        }
    }

    /// A group anyone (or anyone signed in) is in.
    pub fn is_public(&self) -> bool {
        matches!(self, Self::AllUsers | Self::AuthenticatedUsers)
    }

    fn includes(&self, principal: Option<&str>) -> bool {
        match self {
            Self::User { id } => principal == Some(id.as_str()),
            Self::AllUsers => true,
            Self::AuthenticatedUsers => principal.is_some(),
            Self::LogDelivery => false,
        }
    }
}

impl Permission {
    pub fn name(self) -> &'static str {
        match self {
            Self::FullControl => "FULL_CONTROL",
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::ReadAcp => "READ_ACP",
            Self::WriteAcp => "WRITE_ACP",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::FullControl,
            Self::Read,
            Self::Write,
            Self::ReadAcp,
            Self::WriteAcp,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

fn user(id: &str, permission: Permission) -> Grant {
    Grant {
        grantee: Grantee::User { id: id.to_owned() },
        permission,
    }
}

fn group(grantee: Grantee, permission: Permission) -> Grant {
    Grant {
        grantee,
        permission,
    }
}

impl Acl {
    /// The owner's full control and nothing else.
    pub fn private(owner: &str) -> Self {
        Self {
            grants: vec![user(owner, Permission::FullControl)],
        }
    }

    /// A canned ACL (`x-amz-acl`) for a resource owned by `owner` in a
    /// bucket owned by `bucket_owner`; `None` for an unknown name.
    pub fn canned(name: &str, owner: &str, bucket_owner: &str) -> Option<Self> {
        let mut acl = Self::private(owner);
        let extra: Vec<Grant> = match name {
            "private" => vec![],
            "public-read" => vec![group(Grantee::AllUsers, Permission::Read)],
            "public-read-write" => vec![
                group(Grantee::AllUsers, Permission::Read),
                group(Grantee::AllUsers, Permission::Write),
            ],
            "authenticated-read" => vec![group(Grantee::AuthenticatedUsers, Permission::Read)],
            "bucket-owner-read" if owner != bucket_owner => {
                vec![user(bucket_owner, Permission::Read)]
            }
            "bucket-owner-full-control" if owner != bucket_owner => {
                vec![user(bucket_owner, Permission::FullControl)]
            }
            "bucket-owner-read" | "bucket-owner-full-control" => vec![],
            "log-delivery-write" => vec![
                group(Grantee::LogDelivery, Permission::Write),
                group(Grantee::LogDelivery, Permission::ReadAcp),
            ],
            _ => return None,
        };
        acl.grants.extend(extra);
        Some(acl)
    }

    /// Whether `principal` (`None`: anonymous) holds `permission`
    /// (FULL_CONTROL holds every one). With `ignore_public`, grants to
    /// the public groups count for nothing (Block Public Access's
    /// IgnorePublicAcls).
    pub fn allows(
        &self,
        principal: Option<&str>,
        permission: Permission,
        ignore_public: bool,
    ) -> bool {
        self.grants.iter().any(|g| {
            (g.permission == permission || g.permission == Permission::FullControl)
                && !(ignore_public && g.grantee.is_public())
                && g.grantee.includes(principal)
        })
    }

    /// Whether anything is granted to everyone or every signed-in user.
    pub fn is_public(&self) -> bool {
        self.grants.iter().any(|g| g.grantee.is_public())
    }

    /// Whether it grants nothing beyond `owner`'s full control.
    pub fn owner_only(&self, owner: &str) -> bool {
        self.grants.iter().all(|g| {
            g.permission == Permission::FullControl
                && g.grantee
                    == Grantee::User {
                        id: owner.to_owned(),
                    }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_acls_grant_what_s3_grants() {
        let public = Acl::canned("public-read", "alice", "alice").expect("known");
        assert!(public.allows(None, Permission::Read, false));
        assert!(!public.allows(None, Permission::Write, false));
        assert!(
            !public.allows(None, Permission::Read, true),
            "IgnorePublicAcls"
        );
        assert!(public.allows(Some("alice"), Permission::WriteAcp, false));
        assert!(public.is_public());

        let rw = Acl::canned("public-read-write", "alice", "alice").expect("known");
        assert!(rw.allows(None, Permission::Write, false));
        let auth = Acl::canned("authenticated-read", "alice", "alice").expect("known");
        assert!(auth.allows(Some("bob"), Permission::Read, false));
        assert!(!auth.allows(None, Permission::Read, false));

        let full = Acl::canned("bucket-owner-full-control", "bob", "alice").expect("known");
        assert!(full.allows(Some("alice"), Permission::WriteAcp, false));
        let read = Acl::canned("bucket-owner-read", "bob", "alice").expect("known");
        assert!(read.allows(Some("alice"), Permission::Read, false));
        assert!(!read.allows(Some("alice"), Permission::Write, false));

        let private = Acl::canned("private", "alice", "alice").expect("known");
        assert!(private.owner_only("alice") && !private.is_public());
        assert!(!private.allows(Some("bob"), Permission::Read, false));
        assert!(Acl::canned("made-up", "a", "a").is_none());
    }
}
