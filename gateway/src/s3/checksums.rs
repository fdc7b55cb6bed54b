//! S3 additional checksums (`x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}`),
//! sent as a header or announced in `x-amz-trailer` and sent after an
//! aws-chunked body. s3s parses them but leaves verification to the
//! implementation: the body is hashed on the writer's MD5 thread and a
//! mismatch is BadDigest, before anything is committed.

use std::sync::{Arc, Mutex};

use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::Checksum;
use s3s::{S3Result, TrailingHeaders, s3_error};

use crate::blob_writer::BodyTap;

/// The checksums a PUT-like input claims (`PutObjectInput`,
/// `UploadPartInput`: same field names, different types).
macro_rules! claimed_checksums {
    ($input:expr) => {
        s3s::dto::Checksum {
            checksum_crc32: $input.checksum_crc32.clone(),
            checksum_crc32c: $input.checksum_crc32c.clone(),
            checksum_crc64nvme: $input.checksum_crc64nvme.clone(),
            checksum_sha1: $input.checksum_sha1.clone(),
            checksum_sha256: $input.checksum_sha256.clone(),
            ..Default::default()
        }
    };
}
pub(crate) use claimed_checksums;

/// An output (`PutObjectOutput`, `UploadPartOutput`) carrying the checksum
/// computed, and the ETag.
macro_rules! output_with_checksum {
    ($output:ident, $etag:expr, $computed:expr) => {{
        let computed = $computed;
        $output {
            e_tag: Some($etag),
            checksum_crc32: computed.checksum_crc32,
            checksum_crc32c: computed.checksum_crc32c,
            checksum_crc64nvme: computed.checksum_crc64nvme,
            checksum_sha1: computed.checksum_sha1,
            checksum_sha256: computed.checksum_sha256,
            ..Default::default()
        }
    }};
}
pub(crate) use output_with_checksum;

/// The algorithms S3 defines, with their header names.
const ALGORITHMS: [&str; 5] = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"];

/// What a request claims about its body, and the hasher checking it.
pub(crate) struct ChecksumCheck {
    algorithm: &'static str,
    /// The value from a header; `None` when it comes in the trailer.
    claimed: Option<String>,
    trailers: Option<TrailingHeaders>,
    hasher: Arc<Mutex<Option<ChecksumHasher>>>,
}

impl std::fmt::Debug for ChecksumCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChecksumCheck")
            .field("algorithm", &self.algorithm)
            .field("claimed", &self.claimed)
            .finish_non_exhaustive()
    }
}

fn field(checksum: &Checksum, algorithm: &str) -> Option<String> {
    match algorithm {
        "crc32" => checksum.checksum_crc32.clone(),
        "crc32c" => checksum.checksum_crc32c.clone(),
        "crc64nvme" => checksum.checksum_crc64nvme.clone(),
        "sha1" => checksum.checksum_sha1.clone(),
        "sha256" => checksum.checksum_sha256.clone(),
        _ => None,
    }
}

fn hasher_for(algorithm: &str) -> ChecksumHasher {
    let mut hasher = ChecksumHasher::default();
    match algorithm {
        "crc32" => hasher.crc32 = Some(Crc32::new()),
        "crc32c" => hasher.crc32c = Some(Crc32c::new()),
        "crc64nvme" => hasher.crc64nvme = Some(Crc64Nvme::new()),
        "sha1" => hasher.sha1 = Some(Sha1::new()),
        _ => hasher.sha256 = Some(Sha256::new()),
    }
    hasher
}

impl ChecksumCheck {
    /// The check a request asks for: a checksum header, else a checksum
    /// named in `x-amz-trailer`; `None` when it sends neither.
    pub(crate) fn from_request(
        headers: &axum::http::HeaderMap,
        claimed: &Checksum,
        trailers: Option<TrailingHeaders>,
    ) -> S3Result<Option<Self>> {
        let from_header = ALGORITHMS
            .iter()
            .find_map(|&a| field(claimed, a).map(|value| (a, Some(value))));
        let announced = headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase());
        let (algorithm, claimed) = match (from_header, announced) {
            (Some(found), _) => found,
            (None, Some(trailer)) => {
                let algorithm = trailer
                    .strip_prefix("x-amz-checksum-")
                    .and_then(|a| ALGORITHMS.iter().find(|&&known| known == a))
                    .ok_or_else(|| s3_error!(InvalidRequest, "unsupported trailer {trailer}"))?;
                (*algorithm, None)
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Self {
            algorithm,
            claimed,
            trailers,
            hasher: Arc::new(Mutex::new(Some(hasher_for(algorithm)))),
        }))
    }

    /// Feeds the body to the hasher (run by the writer off the reactor).
    pub(crate) fn tap(&self) -> BodyTap {
        let hasher = self.hasher.clone();
        Box::new(move |bytes: &[u8]| {
            if let Some(h) = hasher.lock().expect("checksum lock").as_mut() {
                h.update(bytes);
            }
        })
    }

    /// After the body was consumed: the computed value, or BadDigest when
    /// it differs from what the client sent.
    pub(crate) fn verify(&self) -> S3Result<Checksum> {
        let computed = self
            .hasher
            .lock()
            .expect("checksum lock")
            .take()
            .map(ChecksumHasher::finalize)
            .unwrap_or_default();
        let claimed = match &self.claimed {
            Some(value) => Some(value.clone()),
            None => self.trailers.as_ref().and_then(|t| {
                t.read(|headers| {
                    headers
                        .get(format!("x-amz-checksum-{}", self.algorithm).as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
                .flatten()
            }),
        };
        let Some(claimed) = claimed else {
            return Err(s3_error!(
                InvalidRequest,
                "the x-amz-checksum-{} trailer is missing",
                self.algorithm
            ));
        };
        if field(&computed, self.algorithm).as_deref() != Some(claimed.trim()) {
            return Err(s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                self.algorithm.to_ascii_uppercase()
            ));
        }
        Ok(computed)
    }
}
