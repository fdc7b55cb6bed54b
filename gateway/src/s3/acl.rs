//! ACLs and Object Ownership, as S3 has them.
//!
//! A new bucket is `BucketOwnerEnforced` (S3's default since 2023): ACLs
//! are off, the bucket's owner owns every object, and who may do what is
//! ownership plus the bucket policy ([`super::access`]). There an ACL that
//! says only "the owner has full control" is accepted (it changes nothing)
//! and any other is refused (`AccessControlListNotSupported`, or
//! `InvalidBucketAclWithObjectOwnership` at creation), never stored to be
//! ignored; reading an ACL shows the owner's FULL_CONTROL.
//!
//! A bucket created with (or switched to) `ObjectWriter` or
//! `BucketOwnerPreferred` has ACLs on: canned ACLs (`x-amz-acl`), grant
//! headers (`x-amz-grant-*`) and `AccessControlPolicy` bodies are stored on
//! the bucket and on each version and enforced by the access check; an
//! object is owned by its writer (unless the bucket owner is preferred and
//! given full control). Block Public Access applies: BlockPublicAcls
//! refuses a public ACL, IgnorePublicAcls makes its public grants count
//! for nothing.

use cairn_core::acl::Permission as AclPermission;
use cairn_core::acl::{
    Acl, Grant as AclGrant, Grantee as AclGrantee, ObjectOwnership as Ownership,
};
use cairn_meta_api::model::{BucketRecord, BucketSetting, VersionChange};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Cairn, errors};

/// The `x-amz-grant-*` headers of a request (objects have no WRITE).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct GrantHeaders<'a> {
    pub full_control: Option<&'a str>,
    pub read: Option<&'a str>,
    pub read_acp: Option<&'a str>,
    pub write: Option<&'a str>,
    pub write_acp: Option<&'a str>,
}

impl GrantHeaders<'_> {
    fn any(&self) -> bool {
        self.full_control.is_some()
            || self.read.is_some()
            || self.read_acp.is_some()
            || self.write.is_some()
            || self.write_acp.is_some()
    }
}

/// An object write naming `x-amz-grant-write`: S3 has no such object
/// permission and s3s drops the header, so it is refused here rather than
/// ignored.
pub(super) fn refuse_object_grant_write(headers: &axum::http::HeaderMap) -> S3Result<()> {
    if headers.contains_key("x-amz-grant-write") {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-grant-write is a bucket permission; objects take read, read-acp, write-acp and full-control grants"
        ));
    }
    Ok(())
}

/// The grant headers of an object write (PutObject, CopyObject,
/// CreateMultipartUpload).
macro_rules! object_grants {
    ($input:expr) => {
        super::acl::GrantHeaders {
            full_control: $input.grant_full_control.as_deref(),
            read: $input.grant_read.as_deref(),
            read_acp: $input.grant_read_acp.as_deref(),
            write: None,
            write_acp: $input.grant_write_acp.as_deref(),
        }
    };
}

/// The grant headers of a bucket request (CreateBucket, PutBucketAcl,
/// PutObjectAcl).
macro_rules! all_grants {
    ($input:expr) => {
        super::acl::GrantHeaders {
            full_control: $input.grant_full_control.as_deref(),
            read: $input.grant_read.as_deref(),
            read_acp: $input.grant_read_acp.as_deref(),
            write: $input.grant_write.as_deref(),
            write_acp: $input.grant_write_acp.as_deref(),
        }
    };
}
pub(super) use object_grants;

fn not_supported() -> s3s::S3Error {
    s3_error!(
        AccessControlListNotSupported,
        "The bucket does not allow ACLs (Object Ownership is BucketOwnerEnforced); grant access with a bucket policy, or change its Object Ownership"
    )
}

fn custom(code: &str, status: axum::http::StatusCode, message: &str) -> s3s::S3Error {
    let mut err = s3s::S3Error::with_message(
        s3s::S3ErrorCode::Custom(code.to_owned().into()),
        message.to_owned(),
    );
    err.set_status_code(status);
    err
}

fn public_refused() -> s3s::S3Error {
    s3_error!(
        AccessDenied,
        "The bucket's Block Public Access settings (BlockPublicAcls) refuse a public ACL"
    )
}

/// One `x-amz-grant-*` header: `id="…"` / `uri="…"` grantees, commas
/// between them.
fn parse_grant_header(text: &str, permission: AclPermission) -> S3Result<Vec<AclGrant>> {
    let mut grants = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (kind, value) = item
            .split_once('=')
            .ok_or_else(|| s3_error!(InvalidArgument, "Invalid grant {item}"))?;
        let value = value.trim().trim_matches('"');
        let grantee = match kind.trim().to_ascii_lowercase().as_str() {
            "id" => AclGrantee::User {
                id: value.to_owned(),
            },
            "uri" => AclGrantee::from_uri(value)
                .ok_or_else(|| s3_error!(InvalidArgument, "Invalid group uri {value}"))?,
            "emailaddress" => return Err(email_refused()),
            other => return Err(s3_error!(InvalidArgument, "Invalid grantee type {other}")),
        };
        grants.push(AclGrant {
            grantee,
            permission,
        });
    }
    Ok(grants)
}

fn email_refused() -> s3s::S3Error {
    custom(
        "UnresolvableGrantByEmailAddress",
        axum::http::StatusCode::BAD_REQUEST,
        "Cairn has no e-mail addresses: grant to a user id (its name) or a group",
    )
}

/// The ACL a request's canned ACL or grant headers name for a resource
/// owned by `owner` in a bucket owned by `bucket_owner`; `None` when it
/// names none.
fn acl_from_headers(
    canned: Option<&str>,
    grants: GrantHeaders<'_>,
    owner: &str,
    bucket_owner: &str,
) -> S3Result<Option<Acl>> {
    match (canned, grants.any()) {
        (Some(_), true) => Err(s3_error!(
            InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed"
        )),
        (Some(name), false) => Acl::canned(name, owner, bucket_owner)
            .map(Some)
            .ok_or_else(|| s3_error!(InvalidArgument, "Unknown canned ACL {name}")),
        (None, true) => {
            let mut acl = Acl::default();
            for (header, permission) in [
                (grants.read, AclPermission::Read),
                (grants.write, AclPermission::Write),
                (grants.read_acp, AclPermission::ReadAcp),
                (grants.write_acp, AclPermission::WriteAcp),
                (grants.full_control, AclPermission::FullControl),
            ] {
                if let Some(text) = header {
                    acl.grants.extend(parse_grant_header(text, permission)?);
                }
            }
            Ok(Some(acl))
        }
        (None, false) => Ok(None),
    }
}

/// An `AccessControlPolicy` body as an ACL.
fn acl_from_policy(policy: &AccessControlPolicy) -> S3Result<Acl> {
    let mut acl = Acl::default();
    for grant in policy.grants.iter().flatten() {
        let permission = grant
            .permission
            .as_ref()
            .and_then(|p| AclPermission::from_name(p.as_str()))
            .ok_or_else(|| s3_error!(MalformedACLError, "a grant names no valid permission"))?;
        let grantee = grant
            .grantee
            .as_ref()
            .ok_or_else(|| s3_error!(MalformedACLError, "a grant names no grantee"))?;
        let grantee = match grantee.type_.as_str() {
            Type::CANONICAL_USER => AclGrantee::User {
                id: grantee.id.clone().ok_or_else(|| {
                    s3_error!(InvalidArgument, "a CanonicalUser grantee needs an ID")
                })?,
            },
            Type::GROUP => grantee
                .uri
                .as_deref()
                .and_then(AclGrantee::from_uri)
                .ok_or_else(|| s3_error!(InvalidArgument, "Invalid group uri"))?,
            Type::AMAZON_CUSTOMER_BY_EMAIL => return Err(email_refused()),
            other => return Err(s3_error!(MalformedACLError, "unknown grantee type {other}")),
        };
        acl.grants.push(AclGrant {
            grantee,
            permission,
        });
    }
    Ok(acl)
}

/// S3's shape of an ACL: its owner and grants (group grants first, then
/// users', each in the order given: the order RGW lists them, which
/// clients and Ceph's s3-tests compare against).
fn acl_output(owner: &str, acl: Option<&Acl>) -> (Option<Owner>, Option<Grants>) {
    let private = Acl::private(owner);
    let mut ordered: Vec<&AclGrant> = acl.unwrap_or(&private).grants.iter().collect();
    ordered.sort_by_key(|g| matches!(g.grantee, AclGrantee::User { .. }));
    let grants = ordered
        .into_iter()
        .map(|grant| Grant {
            grantee: Some(match &grant.grantee {
                AclGrantee::User { id } => Grantee {
                    display_name: Some(id.clone()),
                    email_address: None,
                    id: Some(id.clone()),
                    type_: Type::from_static(Type::CANONICAL_USER),
                    uri: None,
                },
                group => Grantee {
                    display_name: None,
                    email_address: None,
                    id: None,
                    type_: Type::from_static(Type::GROUP),
                    uri: group.uri().map(str::to_owned),
                },
            }),
            permission: Some(Permission::from(grant.permission.name().to_owned())),
        })
        .collect();
    let owner = Owner {
        display_name: Some(owner.to_owned()),
        id: Some(owner.to_owned()),
    };
    (Some(owner), Some(grants))
}

fn ownership_of(value: &ObjectOwnership) -> S3Result<Ownership> {
    match value.as_str() {
        ObjectOwnership::BUCKET_OWNER_ENFORCED => Ok(Ownership::BucketOwnerEnforced),
        ObjectOwnership::BUCKET_OWNER_PREFERRED => Ok(Ownership::BucketOwnerPreferred),
        ObjectOwnership::OBJECT_WRITER => Ok(Ownership::ObjectWriter),
        other => Err(s3_error!(
            InvalidArgument,
            "Invalid Object Ownership {other}"
        )),
    }
}

fn ownership_name(ownership: Ownership) -> ObjectOwnership {
    ObjectOwnership::from_static(match ownership {
        Ownership::BucketOwnerEnforced => ObjectOwnership::BUCKET_OWNER_ENFORCED,
        Ownership::BucketOwnerPreferred => ObjectOwnership::BUCKET_OWNER_PREFERRED,
        Ownership::ObjectWriter | Ownership::Unset => ObjectOwnership::OBJECT_WRITER,
    })
}

impl Cairn {
    /// Refuses grants to users that do not exist (S3's `InvalidArgument`).
    async fn check_grantees(&self, acl: &Acl) -> S3Result<()> {
        for grant in &acl.grants {
            if let AclGrantee::User { id } = &grant.grantee
                && !self.users.exists(id).await?
            {
                return Err(s3_error!(InvalidArgument, "Invalid id {id}"));
            }
        }
        Ok(())
    }

    /// An ACL about to be stored on `bucket` or one of its versions:
    /// grantees exist, and Block Public Access lets it be public.
    async fn admit(&self, bucket: &BucketRecord, acl: &Acl) -> S3Result<()> {
        if acl.is_public()
            && bucket
                .public_access_block
                .is_some_and(|b| b.block_public_acls)
        {
            return Err(public_refused());
        }
        self.check_grantees(acl).await
    }

    /// The owner and ACL a new version gets from its write request
    /// (`writer`: who signed it). `(None, None)` — the bucket owner's,
    /// private — unless the bucket has ACLs on.
    pub(super) async fn version_acl(
        &self,
        bucket: &BucketRecord,
        writer: Option<&str>,
        canned: Option<&str>,
        grants: GrantHeaders<'_>,
    ) -> S3Result<(Option<String>, Option<Acl>)> {
        if !bucket.ownership.acls_enabled() {
            // S3 accepts no ACL, or the bucket owner's full control
            // (`bucket-owner-full-control` or its grant); even `private`
            // is refused.
            let acl = acl_from_headers(canned, grants, &bucket.owner, &bucket.owner)?;
            if canned == Some("private") || acl.is_some_and(|acl| !acl.owner_only(&bucket.owner)) {
                return Err(not_supported());
            }
            return Ok((None, None));
        }
        let writer = writer.unwrap_or(&bucket.owner);
        let to_bucket_owner = writer == bucket.owner
            || (bucket.ownership == Ownership::BucketOwnerPreferred
                && canned == Some("bucket-owner-full-control"));
        let owner = if to_bucket_owner {
            bucket.owner.as_str()
        } else {
            writer
        };
        let acl = acl_from_headers(canned, grants, owner, &bucket.owner)?;
        if let Some(acl) = &acl {
            self.admit(bucket, acl).await?;
        }
        Ok(((!to_bucket_owner).then(|| owner.to_owned()), acl))
    }

    /// CreateBucket's Object Ownership and ACL, as settings of the new
    /// bucket.
    pub(super) async fn creation_settings(
        &self,
        input: &CreateBucketInput,
        owner: &str,
    ) -> S3Result<Vec<BucketSetting>> {
        let ownership = input
            .object_ownership
            .as_ref()
            .map(ownership_of)
            .transpose()?
            .unwrap_or(self.default_ownership);
        let acl = acl_from_headers(
            input.acl.as_ref().map(|a| a.as_str()),
            all_grants!(input),
            owner,
            owner,
        )?;
        let mut settings = Vec::new();
        if ownership.acls_enabled() {
            settings.push(BucketSetting::Ownership { ownership });
            if let Some(acl) = acl {
                self.check_grantees(&acl).await?;
                settings.push(BucketSetting::Acl { acl: Some(acl) });
            }
        } else if acl.is_some_and(|acl| !acl.owner_only(owner)) {
            return Err(custom(
                "InvalidBucketAclWithObjectOwnership",
                axum::http::StatusCode::BAD_REQUEST,
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
            ));
        }
        Ok(settings)
    }

    pub(super) async fn get_bucket_acl_op(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        let acl = bucket
            .ownership
            .acls_enabled()
            .then_some(())
            .and(bucket.acl.as_ref());
        let (owner, grants) = acl_output(&bucket.owner, acl);
        Ok(S3Response::new(GetBucketAclOutput { grants, owner }))
    }

    pub(super) async fn put_bucket_acl_op(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let input = req.input;
        let bucket = self.require_bucket(&input.bucket).await?;
        let canned = input.acl.as_ref().map(|a| a.as_str());
        let acl = requested_acl(
            canned,
            all_grants!(input),
            input.access_control_policy.as_ref(),
            &bucket.owner,
            &bucket.owner,
        )?;
        if !bucket.ownership.acls_enabled() {
            // Only an AccessControlPolicy giving the owner full control
            // (what the bucket has) passes, as on S3.
            let body_only = canned.is_none() && !all_grants!(input).any();
            if !body_only || !acl.owner_only(&bucket.owner) {
                return Err(not_supported());
            }
            return Ok(S3Response::new(PutBucketAclOutput::default()));
        }
        self.admit(&bucket, &acl).await?;
        self.set_bucket(&input.bucket, BucketSetting::Acl { acl: Some(acl) })
            .await?;
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }

    pub(super) async fn get_object_acl_op(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let input = req.input;
        let bucket = self.require_bucket(&input.bucket).await?;
        let record = self
            .version_of(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        let manifest = record.manifest;
        let owner = manifest.owner.as_deref().unwrap_or(&bucket.owner);
        let acl = bucket
            .ownership
            .acls_enabled()
            .then_some(())
            .and(manifest.acl.as_ref());
        let (owner, grants) = acl_output(owner, acl);
        Ok(S3Response::new(GetObjectAclOutput {
            grants,
            owner,
            ..Default::default()
        }))
    }

    pub(super) async fn put_object_acl_op(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let input = req.input;
        let bucket = self.require_bucket(&input.bucket).await?;
        let record = self
            .version_of(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        let owner = record.manifest.owner.as_deref().unwrap_or(&bucket.owner);
        if !bucket.ownership.acls_enabled() {
            // S3 refuses every object ACL change on such a bucket.
            return Err(not_supported());
        }
        let acl = requested_acl(
            input.acl.as_ref().map(|a| a.as_str()),
            all_grants!(input),
            input.access_control_policy.as_ref(),
            owner,
            &bucket.owner,
        )?;
        self.admit(&bucket, &acl).await?;
        self.backend
            .meta
            .update_version(
                &input.bucket,
                &input.key,
                Some(record.version_id.as_str()),
                VersionChange::Acl(Some(acl)),
            )
            .await
            .map_err(errors::meta)?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }

    pub(super) async fn get_bucket_ownership_controls_op(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        if bucket.ownership == Ownership::Unset {
            return Err(s3_error!(
                OwnershipControlsNotFoundError,
                "The bucket ownership controls were not found"
            ));
        }
        Ok(S3Response::new(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(OwnershipControls {
                rules: vec![OwnershipControlsRule {
                    object_ownership: ownership_name(bucket.ownership),
                }],
            }),
        }))
    }

    pub(super) async fn put_bucket_ownership_controls_op(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        let input = req.input;
        let bucket = self.require_bucket(&input.bucket).await?;
        let [rule] = input.ownership_controls.rules.as_slice() else {
            return Err(s3_error!(
                MalformedXML,
                "Ownership controls have exactly one rule"
            ));
        };
        let ownership = ownership_of(&rule.object_ownership)?;
        // S3 will not switch ACLs off while the bucket's ACL grants anyone
        // but its owner (they would lose access silently).
        if !ownership.acls_enabled()
            && bucket.ownership.acls_enabled()
            && bucket
                .acl
                .as_ref()
                .is_some_and(|acl| !acl.owner_only(&bucket.owner))
        {
            return Err(custom(
                "InvalidBucketAclWithObjectOwnership",
                axum::http::StatusCode::BAD_REQUEST,
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
            ));
        }
        self.set_bucket(&input.bucket, BucketSetting::Ownership { ownership })
            .await?;
        Ok(S3Response::new(PutBucketOwnershipControlsOutput::default()))
    }

    pub(super) async fn delete_bucket_ownership_controls_op(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        self.set_bucket(
            &req.input.bucket,
            BucketSetting::Ownership {
                ownership: Ownership::Unset,
            },
        )
        .await?;
        let mut response = S3Response::new(DeleteBucketOwnershipControlsOutput::default());
        response.status = Some(axum::http::StatusCode::NO_CONTENT);
        Ok(response)
    }
}

/// The ACL a Put{Bucket,Object}Acl asks for: a canned ACL, grant headers
/// or an `AccessControlPolicy` body (exactly one of them).
fn requested_acl(
    canned: Option<&str>,
    grants: GrantHeaders<'_>,
    policy: Option<&AccessControlPolicy>,
    owner: &str,
    bucket_owner: &str,
) -> S3Result<Acl> {
    let from_headers = acl_from_headers(canned, grants, owner, bucket_owner)?;
    match (from_headers, policy) {
        (Some(_), Some(_)) => Err(s3_error!(
            UnexpectedContent,
            "This request does not support content when an ACL header is given"
        )),
        (Some(acl), None) => Ok(acl),
        (None, Some(policy)) => acl_from_policy(policy),
        (None, None) => Err(s3_error!(
            MissingSecurityHeader,
            "Your request was missing a required header: an ACL header or an AccessControlPolicy body"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_headers_and_canned_acls_make_acls() {
        let grants = GrantHeaders {
            read: Some(r#"id="bob", uri="http://acs.amazonaws.com/groups/global/AllUsers""#),
            write_acp: Some("id=carol"),
            ..Default::default()
        };
        let acl = acl_from_headers(None, grants, "alice", "alice")
            .expect("parses")
            .expect("some");
        assert!(acl.allows(Some("bob"), AclPermission::Read, false));
        assert!(acl.allows(None, AclPermission::Read, false));
        assert!(acl.allows(Some("carol"), AclPermission::WriteAcp, false));
        assert!(!acl.allows(Some("bob"), AclPermission::WriteAcp, false));
        assert!(acl_from_headers(Some("private"), grants, "a", "a").is_err());
        let email = GrantHeaders {
            read: Some(r#"emailAddress="x@example.com""#),
            ..Default::default()
        };
        assert!(acl_from_headers(None, email, "a", "a").is_err());
        assert_eq!(
            acl_from_headers(None, GrantHeaders::default(), "a", "a").expect("none"),
            None
        );
        let public = acl_from_headers(Some("public-read"), GrantHeaders::default(), "a", "a")
            .expect("canned")
            .expect("some");
        assert!(public.is_public() && !public.owner_only("a"));
    }
}
