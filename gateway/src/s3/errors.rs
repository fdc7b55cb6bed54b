//! From Cairn's internal errors to the S3 error codes and statuses a real S3
//! returns.

use cairn_metadata_service::client::MetaError;
use s3s::{S3Error, S3ErrorCode, s3_error};

use crate::backend::BackendError;
use crate::blob_reader::ReadError;
use crate::blob_writer::WriteError;

/// A catalogue error: its S3 code when it has one, else an internal error.
pub(crate) fn meta(err: MetaError) -> S3Error {
    if let MetaError::Api { body, .. } = &err
        && let Some(code) = s3_code(&body.code)
    {
        return S3Error::with_message(code, body.message.clone());
    }
    tracing::error!(error = %err, "metadata service failed");
    match err {
        MetaError::Transport { .. } | MetaError::Routing { .. } => {
            s3_error!(ServiceUnavailable, "the catalogue is unreachable; retry")
        }
        MetaError::Api { .. } => s3_error!(InternalError, "catalogue error"),
    }
}

fn s3_code(code: &str) -> Option<S3ErrorCode> {
    let known = [
        "NoSuchBucket",
        "NoSuchKey",
        "NoSuchUpload",
        "BucketAlreadyExists",
        "BucketAlreadyOwnedByYou",
        "BucketNotEmpty",
        "InvalidBucketName",
        "KeyTooLongError",
        "PreconditionFailed",
        "InvalidPart",
        "InvalidPartOrder",
        "EntityTooSmall",
        "MalformedXML",
    ];
    known
        .contains(&code)
        .then(|| S3ErrorCode::from_bytes(code.as_bytes()))
        .flatten()
}

pub(crate) fn backend(err: BackendError) -> S3Error {
    match err {
        BackendError::TooLarge { limit } => S3Error::with_message(
            S3ErrorCode::EntityTooLarge,
            format!("the object exceeds the maximum allowed size of {limit} bytes"),
        ),
        BackendError::Meta(err) => meta(err),
        BackendError::Placement(err) => {
            tracing::error!(error = %err, "no placement for a new blob");
            S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                format!("not enough healthy storage nodes: {err}"),
            )
        }
        // s3s's aws-chunked error type is private: its message names a
        // chunk whose signature did not verify.
        BackendError::Write(WriteError::Body(message)) if message.contains("SignatureMismatch") => {
            S3Error::with_message(
                S3ErrorCode::SignatureDoesNotMatch,
                "a chunk signature of the streaming upload does not match",
            )
        }
        BackendError::Write(WriteError::Body(message)) => {
            S3Error::with_message(S3ErrorCode::IncompleteBody, message)
        }
        BackendError::Write(err @ WriteError::Quorum { .. }) => {
            tracing::error!(error = %err, "write quorum not reached");
            S3Error::with_message(S3ErrorCode::ServiceUnavailable, err.to_string())
        }
        BackendError::Write(err) => {
            tracing::error!(error = %err, "write failed");
            S3Error::with_message(S3ErrorCode::InternalError, err.to_string())
        }
    }
}

/// A read that failed before its first byte was sent.
pub(crate) fn read(err: ReadError) -> S3Error {
    match err {
        ReadError::Range { .. } => S3Error::new(S3ErrorCode::InvalidRange),
        err => {
            tracing::error!(error = %err, "read failed");
            S3Error::with_message(S3ErrorCode::InternalError, err.to_string())
        }
    }
}
