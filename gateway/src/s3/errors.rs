//! From Cairn's internal errors to the S3 error codes and statuses a real S3
//! returns.

use cairn_meta_api::client::MetaError;
use cairn_service::{ClientError, ErrorCode};
use s3s::{S3Error, S3ErrorCode, s3_error};

use crate::backend::BackendError;
use crate::blob_reader::ReadError;
use crate::blob_writer::WriteError;

/// A catalogue error: its S3 code when it has one, else an internal error
/// (or "unavailable" when the catalogue could not be reached).
pub(crate) fn meta(err: MetaError) -> S3Error {
    if let Some(code) = err.code().and_then(s3_code) {
        let message = match &err {
            MetaError::Http(ClientError::Api { body, .. }) => body.message.clone(),
            other => other.to_string(),
        };
        return S3Error::with_message(code, message);
    }
    tracing::error!(error = %err, "metadata service failed");
    if err.is_unavailable() {
        s3_error!(ServiceUnavailable, "the catalogue is unreachable; retry")
    } else {
        s3_error!(InternalError, "catalogue error")
    }
}

/// The catalogue codes S3 clients see as themselves.
fn s3_code(code: ErrorCode) -> Option<S3ErrorCode> {
    use ErrorCode as C;
    Some(match code {
        C::NoSuchBucket => S3ErrorCode::NoSuchBucket,
        C::NoSuchKey => S3ErrorCode::NoSuchKey,
        C::NoSuchUpload => S3ErrorCode::NoSuchUpload,
        C::BucketAlreadyExists => S3ErrorCode::BucketAlreadyExists,
        C::BucketAlreadyOwnedByYou => S3ErrorCode::BucketAlreadyOwnedByYou,
        C::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
        C::InvalidBucketName => S3ErrorCode::InvalidBucketName,
        C::KeyTooLongError => S3ErrorCode::KeyTooLongError,
        C::PreconditionFailed => S3ErrorCode::PreconditionFailed,
        C::InvalidPart => S3ErrorCode::InvalidPart,
        C::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        C::EntityTooSmall => S3ErrorCode::EntityTooSmall,
        C::MalformedXml => S3ErrorCode::MalformedXML,
        C::AccessDenied => S3ErrorCode::AccessDenied,
        C::InvalidBucketState => S3ErrorCode::InvalidBucketState,
        C::NoSuchVersion => S3ErrorCode::NoSuchVersion,
        C::InvalidArgument => S3ErrorCode::InvalidArgument,
        _ => return None,
    })
}

pub(crate) fn backend(err: BackendError) -> S3Error {
    match err {
        BackendError::TooLarge { limit } => S3Error::with_message(
            S3ErrorCode::EntityTooLarge,
            format!("the object exceeds the maximum allowed size of {limit} bytes"),
        ),
        BackendError::ClientIdle(idle) => S3Error::with_message(
            S3ErrorCode::RequestTimeout,
            format!(
                "Your socket connection to the server was not read from or written to within the timeout period ({} s).",
                idle.as_secs()
            ),
        ),
        BackendError::Meta(err) => meta(err),
        BackendError::Class(message) => {
            S3Error::with_message(S3ErrorCode::InvalidStorageClass, message)
        }
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
