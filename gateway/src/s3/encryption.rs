//! Server-side encryption in the S3 operations: what a request asks for
//! (SSE-C headers, `x-amz-server-side-encryption`, the bucket's default),
//! the key that opens a stored version, the headers a response reports,
//! and Put/Get/DeleteBucketEncryption. The cipher itself is
//! [`crate::sse`].

use cairn_core::manifest::{Encryption, EncryptionMode, ObjectManifest};
use cairn_meta_api::model::{BucketRecord, BucketSetting, DefaultEncryption};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Cairn;
use crate::sse::{CustomerKey, Requested, VersionKey, kms_refused};

/// The SSE-C key a request names in its `sse_customer_*` fields.
macro_rules! customer_key {
    ($input:expr) => {
        crate::sse::CustomerKey::from_headers(
            $input.sse_customer_algorithm.as_deref(),
            $input.sse_customer_key.as_deref(),
            $input.sse_customer_key_md5.as_deref(),
        )?
    };
}
pub(super) use customer_key;

/// The encryption a write (PutObject, CopyObject's destination,
/// CreateMultipartUpload) asks for in its headers.
macro_rules! requested {
    ($input:expr) => {
        crate::sse::Requested::from_headers(
            $input.server_side_encryption.as_ref().map(|s| s.as_str()),
            $input.ssekms_key_id.as_deref(),
            super::encryption::customer_key!($input),
        )?
    };
}
pub(super) use requested;

/// A read naming `x-amz-server-side-encryption` is refused, as S3 does
/// (the header belongs to writes; SSE-S3 objects need nothing to be read).
pub(super) fn refuse_sse_header_on_read(headers: &axum::http::HeaderMap) -> S3Result<()> {
    if headers.contains_key("x-amz-server-side-encryption") {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-server-side-encryption header is not supported for this operation."
        ));
    }
    Ok(())
}

/// What a request asked for, or the bucket's default encryption when it
/// asked for none.
pub(super) fn or_bucket_default(requested: Requested, bucket: &BucketRecord) -> Requested {
    match (requested, &bucket.encryption) {
        (Requested::None, Some(_)) => Requested::Cluster,
        (requested, _) => requested,
    }
}

/// The encryption headers a response reports for a version.
#[derive(Debug, Default)]
pub(super) struct Reported {
    pub server_side_encryption: Option<ServerSideEncryption>,
    pub sse_customer_algorithm: Option<String>,
    pub sse_customer_key_md5: Option<String>,
}

impl Reported {
    pub(super) fn of(encryption: Option<&Encryption>, customer: Option<&CustomerKey>) -> Self {
        match encryption.map(|e| &e.mode) {
            None => Self::default(),
            Some(EncryptionMode::ClusterKey { .. }) => Self {
                server_side_encryption: Some(ServerSideEncryption::from_static(
                    ServerSideEncryption::AES256,
                )),
                ..Self::default()
            },
            Some(EncryptionMode::CustomerKey { .. }) => Self {
                sse_customer_algorithm: Some("AES256".into()),
                sse_customer_key_md5: customer.map(|c| c.md5().to_owned()),
                ..Self::default()
            },
        }
    }
}

/// Fills a response's encryption fields from a [`Reported`].
macro_rules! report {
    ($output:expr, $reported:expr) => {{
        let reported = $reported;
        $output.server_side_encryption = reported.server_side_encryption;
        $output.sse_customer_algorithm = reported.sse_customer_algorithm;
        $output.sse_customer_key_md5 = reported.sse_customer_key_md5;
    }};
}
pub(super) use report;

impl Cairn {
    /// A new version's encryption record and key, for what was requested.
    pub(super) fn seal(&self, requested: &Requested) -> S3Result<Option<(Encryption, VersionKey)>> {
        let sealed = VersionKey::seal(requested, &self.keyring)?;
        if let Some((record, _)) = &sealed {
            self.count_encryption("seal", record);
        }
        Ok(sealed)
    }

    fn count_encryption(&self, op: &str, record: &Encryption) {
        let mode = match record.mode {
            EncryptionMode::CustomerKey { .. } => "sse_c",
            EncryptionMode::ClusterKey { .. } => "sse_s3",
        };
        self.backend
            .metrics
            .encryption
            .with_label_values(&[op, mode])
            .inc();
    }

    /// The key that reads a stored version: none for plaintext (where an
    /// SSE-C key is S3's 400), the customer's key again for SSE-C.
    pub(super) fn open_version(
        &self,
        object: &ObjectManifest,
        customer: Option<&CustomerKey>,
    ) -> S3Result<Option<VersionKey>> {
        match &object.encryption {
            Some(encryption) => {
                let opened = VersionKey::open(encryption, customer, &self.keyring);
                match &opened {
                    Ok(_) => self.count_encryption("open", encryption),
                    Err(err) if err.code().as_str() != "InternalError" => {
                        self.backend.metrics.sse_key_refusals.inc();
                    }
                    Err(_) => {}
                }
                opened.map(Some)
            }
            None if customer.is_some() => Err(s3_error!(
                InvalidRequest,
                "The encryption parameters are not applicable to this object."
            )),
            None => Ok(None),
        }
    }

    pub(super) async fn put_bucket_encryption_op(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let input = req.input;
        let rules = input.server_side_encryption_configuration.rules;
        let [rule] = rules.as_slice() else {
            return Err(s3_error!(
                MalformedXML,
                "a server-side encryption configuration has exactly one rule"
            ));
        };
        let Some(default) = &rule.apply_server_side_encryption_by_default else {
            return Err(s3_error!(
                MalformedXML,
                "the rule names no ApplyServerSideEncryptionByDefault"
            ));
        };
        match default.sse_algorithm.as_str() {
            ServerSideEncryption::AES256 if default.kms_master_key_id.is_none() => {}
            ServerSideEncryption::AES256 => {
                return Err(s3_error!(
                    InvalidArgument,
                    "a KMS key id is only allowed with aws:kms"
                ));
            }
            ServerSideEncryption::AWS_KMS | ServerSideEncryption::AWS_KMS_DSSE => {
                return Err(kms_refused());
            }
            other => {
                return Err(s3_error!(
                    InvalidArgument,
                    "the server-side encryption algorithm {other} is not valid"
                ));
            }
        }
        if self.keyring.is_empty() {
            return Err(s3_error!(
                NotImplemented,
                "SSE-S3 needs a master key: no sse_keyring_file is configured on this gateway"
            ));
        }
        self.require_bucket(&input.bucket).await?;
        self.set_bucket(
            &input.bucket,
            BucketSetting::Encryption {
                encryption: Some(DefaultEncryption {
                    bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false),
                }),
            },
        )
        .await?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    pub(super) async fn get_bucket_encryption_op(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        let Some(default) = bucket.encryption else {
            let mut err = s3_error!(
                ServerSideEncryptionConfigurationNotFoundError,
                "The server side encryption configuration was not found"
            );
            // S3 answers 404 (s3s's default for this code is 400).
            err.set_status_code(axum::http::StatusCode::NOT_FOUND);
            return Err(err);
        };
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![ServerSideEncryptionRule {
                    apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                        sse_algorithm: ServerSideEncryption::from_static(
                            ServerSideEncryption::AES256,
                        ),
                        kms_master_key_id: None,
                    }),
                    bucket_key_enabled: Some(default.bucket_key_enabled),
                }],
            }),
        }))
    }

    pub(super) async fn delete_bucket_encryption_op(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        self.set_bucket(
            &req.input.bucket,
            BucketSetting::Encryption { encryption: None },
        )
        .await?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
    }
}
