//! ACLs as S3 has them by default since 2023: disabled. Every bucket's
//! Object Ownership is `BucketOwnerEnforced`: the bucket's owner owns every
//! object in it, and who may do what is decided by ownership and the
//! bucket policy alone ([`super::access`]). An ACL that says only "the
//! owner has full control" is accepted (it changes nothing); any other
//! (a public canned ACL, a grant to someone) is refused with
//! `AccessControlListNotSupported`, as S3 refuses it on such a bucket,
//! never stored to be ignored. Reading an ACL shows the owner's
//! FULL_CONTROL.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Cairn;

/// The grant headers (`x-amz-grant-*`) of a request.
macro_rules! grant_headers {
    ($input:expr) => {
        $input.grant_full_control.is_some()
            || $input.grant_read.is_some()
            || $input.grant_read_acp.is_some()
            || $input.grant_write_acp.is_some()
    };
}

/// Refuses an object write's `x-amz-acl` / `x-amz-grant-*` unless they
/// grant nothing beyond the owner.
macro_rules! refuse_object_acl {
    ($input:expr) => {
        super::acl::refuse_acl(
            $input.acl.as_ref().map(|a| a.as_str()),
            super::acl::grant_headers!($input),
        )?
    };
}
pub(super) use {grant_headers, refuse_object_acl};

/// Refuses a Put{Bucket,Object}Acl that grants anything beyond `owner`'s
/// full control: canned ACL, grant headers or an `AccessControlPolicy`.
macro_rules! refuse_put_acl {
    ($input:expr, $owner:expr) => {{
        let grants = grant_headers!($input) || $input.grant_write.is_some();
        refuse_acl($input.acl.as_ref().map(|a| a.as_str()), grants)?;
        if let Some(policy) = &$input.access_control_policy
            && !owner_only_policy(policy, $owner)
        {
            return Err(not_supported());
        }
    }};
}

/// Canned ACLs that grant nothing beyond the bucket owner's full control.
fn owner_only(acl: &str) -> bool {
    matches!(acl, "private" | "bucket-owner-full-control")
}

pub(super) fn refuse_acl(canned: Option<&str>, grants: bool) -> S3Result<()> {
    if grants || canned.is_some_and(|acl| !owner_only(acl)) {
        return Err(not_supported());
    }
    Ok(())
}

fn not_supported() -> s3s::S3Error {
    s3_error!(
        AccessControlListNotSupported,
        "The bucket does not allow ACLs (Object Ownership is BucketOwnerEnforced); grant access with a bucket policy"
    )
}

/// CreateBucket's ACL and ownership: only `BucketOwnerEnforced` (the
/// default) and no ACL beyond the owner's, as S3 answers for such a bucket.
pub(super) fn refuse_bucket_acl_at_creation(input: &CreateBucketInput) -> S3Result<()> {
    if input
        .object_ownership
        .as_ref()
        .is_some_and(|o| o.as_str() != ObjectOwnership::BUCKET_OWNER_ENFORCED)
    {
        return Err(s3_error!(
            NotImplemented,
            "Cairn's buckets are BucketOwnerEnforced (ACLs disabled); grant access with a bucket policy"
        ));
    }
    let grants = grant_headers!(input) || input.grant_write.is_some();
    if grants
        || input
            .acl
            .as_ref()
            .is_some_and(|acl| !owner_only(acl.as_str()))
    {
        let mut err = s3s::S3Error::with_message(
            s3s::S3ErrorCode::Custom("InvalidBucketAclWithObjectOwnership".into()),
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        );
        err.set_status_code(axum::http::StatusCode::BAD_REQUEST);
        return Err(err);
    }
    Ok(())
}

/// An `AccessControlPolicy` body that grants only the owner full control.
fn owner_only_policy(policy: &AccessControlPolicy, owner: &str) -> bool {
    policy.grants.as_ref().is_none_or(|grants| {
        grants.iter().all(|grant| {
            grant.permission.as_ref().map(|p| p.as_str()) == Some(Permission::FULL_CONTROL)
                && grant.grantee.as_ref().is_some_and(|g| {
                    g.type_.as_str() == Type::CANONICAL_USER && g.id.as_deref() == Some(owner)
                })
        })
    })
}

fn owner_grants(owner: &str) -> (Option<Owner>, Option<Grants>) {
    let user = || Owner {
        display_name: Some(owner.to_owned()),
        id: Some(owner.to_owned()),
    };
    let grant = Grant {
        grantee: Some(Grantee {
            display_name: Some(owner.to_owned()),
            email_address: None,
            id: Some(owner.to_owned()),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    };
    (Some(user()), Some(vec![grant]))
}

impl Cairn {
    pub(super) async fn get_bucket_acl_op(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        let (owner, grants) = owner_grants(&bucket.owner);
        Ok(S3Response::new(GetBucketAclOutput { grants, owner }))
    }

    pub(super) async fn put_bucket_acl_op(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let input = req.input;
        let bucket = self.require_bucket(&input.bucket).await?;
        refuse_put_acl!(input, &bucket.owner);
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }

    pub(super) async fn get_object_acl_op(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let input = req.input;
        let bucket = self.require_bucket(&input.bucket).await?;
        self.version_of(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        let (owner, grants) = owner_grants(&bucket.owner);
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
        self.version_of(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        refuse_put_acl!(input, &bucket.owner);
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }

    pub(super) async fn get_bucket_ownership_controls_op(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(OwnershipControls {
                rules: vec![OwnershipControlsRule {
                    object_ownership: ObjectOwnership::from_static(
                        ObjectOwnership::BUCKET_OWNER_ENFORCED,
                    ),
                }],
            }),
        }))
    }

    pub(super) async fn put_bucket_ownership_controls_op(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        let enforced =
            input.ownership_controls.rules.iter().all(|rule| {
                rule.object_ownership.as_str() == ObjectOwnership::BUCKET_OWNER_ENFORCED
            });
        if !enforced {
            return Err(s3_error!(
                NotImplemented,
                "Cairn's buckets are BucketOwnerEnforced (ACLs disabled); grant access with a bucket policy"
            ));
        }
        Ok(S3Response::new(PutBucketOwnershipControlsOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owner_only_acls_pass() {
        assert!(refuse_acl(None, false).is_ok());
        assert!(refuse_acl(Some("private"), false).is_ok());
        assert!(refuse_acl(Some("bucket-owner-full-control"), false).is_ok());
        for acl in ["public-read", "public-read-write", "authenticated-read"] {
            let err = refuse_acl(Some(acl), false).expect_err("refused");
            assert_eq!(err.code().as_str(), "AccessControlListNotSupported");
        }
        assert!(refuse_acl(None, true).is_err());
    }
}
