//! Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus and
//! Put/Get/DeletePublicAccessBlock. A policy is validated when it is put
//! (`MalformedPolicy`, never stored to be ignored later) and kept verbatim
//! in the bucket record; [`super::access`] evaluates it. Block Public
//! Access refuses public policies (`BlockPublicPolicy`) or makes their
//! grants to others void (`RestrictPublicBuckets`).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use cairn_meta_api::model::{BucketSetting, PublicAccessBlock};

use super::Cairn;
use crate::policy::Policy as BucketPolicy;

impl Cairn {
    pub(super) async fn put_bucket_policy_op(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let input = req.input;
        let policy = BucketPolicy::parse(&input.policy, &input.bucket)
            .map_err(|err| s3_error!(MalformedPolicy, "{err}"))?;
        let bucket = self.require_bucket(&input.bucket).await?;
        if policy.is_public()
            && bucket
                .public_access_block
                .is_some_and(|block| block.block_public_policy)
        {
            return Err(s3_error!(
                AccessDenied,
                "The bucket's Block Public Access settings (BlockPublicPolicy) refuse a public policy"
            ));
        }
        self.set_bucket(
            &input.bucket,
            BucketSetting::Policy {
                policy: Some(input.policy),
            },
        )
        .await?;
        let mut response = S3Response::new(PutBucketPolicyOutput::default());
        response.status = Some(axum::http::StatusCode::NO_CONTENT);
        Ok(response)
    }

    pub(super) async fn get_bucket_policy_op(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        let Some(policy) = bucket.policy else {
            return Err(s3_error!(
                NoSuchBucketPolicy,
                "The bucket policy does not exist"
            ));
        };
        Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(policy),
        }))
    }

    pub(super) async fn get_bucket_policy_status_op(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        let Some(policy) = bucket.policy else {
            return Err(s3_error!(
                NoSuchBucketPolicy,
                "The bucket policy does not exist"
            ));
        };
        let public = BucketPolicy::parse(&policy, &bucket.name).is_ok_and(|p| p.is_public());
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(public),
            }),
        }))
    }

    pub(super) async fn delete_bucket_policy_op(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        self.set_bucket(&req.input.bucket, BucketSetting::Policy { policy: None })
            .await?;
        Ok(S3Response::new(DeleteBucketPolicyOutput::default()))
    }

    pub(super) async fn put_public_access_block_op(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let input = req.input;
        let config = input.public_access_block_configuration;
        self.require_bucket(&input.bucket).await?;
        let block = PublicAccessBlock {
            block_public_acls: config.block_public_acls.unwrap_or(false),
            ignore_public_acls: config.ignore_public_acls.unwrap_or(false),
            block_public_policy: config.block_public_policy.unwrap_or(false),
            restrict_public_buckets: config.restrict_public_buckets.unwrap_or(false),
        };
        self.set_bucket(
            &input.bucket,
            BucketSetting::PublicAccessBlock { block: Some(block) },
        )
        .await?;
        Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
    }

    pub(super) async fn get_public_access_block_op(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        let Some(block) = bucket.public_access_block else {
            let mut err = s3s::S3Error::with_message(
                s3s::S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
                "The public access block configuration was not found",
            );
            err.set_status_code(axum::http::StatusCode::NOT_FOUND);
            return Err(err);
        };
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(PublicAccessBlockConfiguration {
                block_public_acls: Some(block.block_public_acls),
                ignore_public_acls: Some(block.ignore_public_acls),
                block_public_policy: Some(block.block_public_policy),
                restrict_public_buckets: Some(block.restrict_public_buckets),
            }),
        }))
    }

    pub(super) async fn delete_public_access_block_op(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        self.set_bucket(
            &req.input.bucket,
            BucketSetting::PublicAccessBlock { block: None },
        )
        .await?;
        Ok(S3Response::new(DeletePublicAccessBlockOutput::default()))
    }
}
