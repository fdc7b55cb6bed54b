//! The error body every internal API answers with, and its typed code.
//!
//! Codes are a closed enum shared by server and client: a server can only
//! send a code that exists here, and a client matches on variants, so a
//! renamed code is a compile error instead of a silent mismatch. The wire
//! spelling of each code is fixed below and never changes; codes unknown to
//! an older client deserialize as [`ErrorCode::Unknown`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this build does not know (sent by a newer peer).
            Unknown,
        }

        impl ErrorCode {
            /// The code as it travels on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::Unknown => "unknown",
                }
            }

            /// Parses a wire code; unknown spellings give [`ErrorCode::Unknown`].
            pub fn from_wire(text: &str) -> Self {
                match text {
                    $($wire => Self::$variant,)*
                    _ => Self::Unknown,
                }
            }
        }
    };
}

error_codes! {
    // Any service.
    BadRequest = "bad_request",
    Unauthorized = "unauthorized",
    Forbidden = "forbidden",
    Internal = "internal",
    // Storage node.
    NotFound = "not_found",
    /// A stored block no longer matches its hash; the body names the block.
    CorruptBlock = "corrupt_block",
    /// The chunk's header or trailer is unreadable.
    CorruptChunk = "corrupt_chunk",
    /// A block arrived with a hash other than the one declared.
    BadDigest = "bad_digest",
    InvalidStream = "invalid_stream",
    InvalidRange = "invalid_range",
    InsufficientStorage = "insufficient_storage",
    IoError = "io_error",
    // Metadata service: routing and cluster calls.
    /// The shard is not (or no longer) hosted here: refresh the map.
    WrongShard = "wrong_shard",
    /// This replica does not lead the group; `leader` names who does.
    NotLeader = "not_leader",
    /// The group cannot commit (no quorum of replicas answers) in time.
    NoQuorum = "no_quorum",
    BadSplit = "bad_split",
    /// A compare-and-swap precondition of an internal command failed.
    Conflict = "conflict",
    UnexpectedOutcome = "unexpected_outcome",
    // Metadata service: catalogue errors that S3 clients see, spelt as S3
    // spells them.
    NoSuchBucket = "NoSuchBucket",
    NoSuchKey = "NoSuchKey",
    NoSuchUpload = "NoSuchUpload",
    BucketAlreadyExists = "BucketAlreadyExists",
    BucketAlreadyOwnedByYou = "BucketAlreadyOwnedByYou",
    BucketNotEmpty = "BucketNotEmpty",
    InvalidBucketName = "InvalidBucketName",
    KeyTooLongError = "KeyTooLongError",
    PreconditionFailed = "PreconditionFailed",
    InvalidPart = "InvalidPart",
    InvalidPartOrder = "InvalidPartOrder",
    EntityTooSmall = "EntityTooSmall",
    MalformedXml = "MalformedXML",
    InternalError = "InternalError",
    AccessDenied = "AccessDenied",
    InvalidBucketState = "InvalidBucketState",
    NoSuchVersion = "NoSuchVersion",
    InvalidArgument = "InvalidArgument",
    // Scrubber.
    NoSuchJob = "no_such_job",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Ok(Self::from_wire(&text))
    }
}

/// Body of every error response. A wire format: fields are only added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// The block concerned, for block-level errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<u64>,
    /// For `not_leader`: the URL of the leader, when the answering replica
    /// knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// An API failure: an HTTP status and an [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                block: None,
                leader: None,
            },
        }
    }

    /// Names the leader a `not_leader` answer points to.
    pub fn with_leader(mut self, leader: Option<String>) -> Self {
        self.body.leader = leader;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            message,
        )
    }

    /// Names the block an error is about.
    pub fn with_block(mut self, block: Option<u64>) -> Self {
        self.body.block = block;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_their_wire_spelling_and_unknown_ones_parse() {
        for (code, wire) in [
            (ErrorCode::WrongShard, "\"wrong_shard\""),
            (ErrorCode::NoSuchBucket, "\"NoSuchBucket\""),
            (ErrorCode::MalformedXml, "\"MalformedXML\""),
            (ErrorCode::CorruptBlock, "\"corrupt_block\""),
        ] {
            assert_eq!(serde_json::to_string(&code).expect("serialize"), wire);
            assert_eq!(
                serde_json::from_str::<ErrorCode>(wire).expect("parse"),
                code
            );
        }
        let body: ErrorBody =
            serde_json::from_str(r#"{"code":"from_the_future","message":"m"}"#).expect("parse");
        assert_eq!(body.code, ErrorCode::Unknown);
    }
}
