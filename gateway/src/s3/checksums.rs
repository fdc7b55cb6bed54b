//! S3 additional checksums (`x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}`),
//! sent as a header or announced in `x-amz-trailer` and sent after an
//! aws-chunked body. s3s parses them but leaves verification to the
//! implementation: the body is hashed on the writer's MD5 thread and a
//! mismatch is BadDigest, before anything is committed.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use cairn_core::manifest::{ChecksumAlgorithm, ChecksumKind, ObjectChecksum};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::{Checksum, ChecksumType};
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

/// The value of one algorithm's field in any S3 struct with the five
/// `checksum_*` fields.
macro_rules! checksum_field {
    ($source:expr, $algorithm:expr) => {
        match $algorithm {
            cairn_core::manifest::ChecksumAlgorithm::Crc32 => $source.checksum_crc32.clone(),
            cairn_core::manifest::ChecksumAlgorithm::Crc32c => $source.checksum_crc32c.clone(),
            cairn_core::manifest::ChecksumAlgorithm::Crc64nvme => {
                $source.checksum_crc64nvme.clone()
            }
            cairn_core::manifest::ChecksumAlgorithm::Sha1 => $source.checksum_sha1.clone(),
            cairn_core::manifest::ChecksumAlgorithm::Sha256 => $source.checksum_sha256.clone(),
        }
    };
}
pub(crate) use checksum_field;

/// Sets one algorithm's field in any S3 struct with the five
/// `checksum_*` fields.
macro_rules! set_checksum_field {
    ($target:expr, $algorithm:expr, $value:expr) => {{
        let value = Some($value);
        match $algorithm {
            cairn_core::manifest::ChecksumAlgorithm::Crc32 => $target.checksum_crc32 = value,
            cairn_core::manifest::ChecksumAlgorithm::Crc32c => $target.checksum_crc32c = value,
            cairn_core::manifest::ChecksumAlgorithm::Crc64nvme => {
                $target.checksum_crc64nvme = value
            }
            cairn_core::manifest::ChecksumAlgorithm::Sha1 => $target.checksum_sha1 = value,
            cairn_core::manifest::ChecksumAlgorithm::Sha256 => $target.checksum_sha256 = value,
        }
    }};
}
pub(crate) use set_checksum_field;

/// What a request claims about its body, and the hasher checking it.
pub(crate) struct ChecksumCheck {
    algorithm: ChecksumAlgorithm,
    claimed: Claimed,
    hasher: Arc<Mutex<Option<ChecksumHasher>>>,
}

enum Claimed {
    /// In a header.
    Header(String),
    /// In the trailer after an aws-chunked body.
    Trailer(Option<TrailingHeaders>),
    /// Nothing: the checksum is only computed (a multipart upload's
    /// algorithm for a part sent without one, a copied part).
    Nothing,
}

impl std::fmt::Debug for ChecksumCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChecksumCheck")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn field(checksum: &Checksum, algorithm: ChecksumAlgorithm) -> Option<String> {
    checksum_field!(checksum, algorithm)
}

/// A single PUT's checksum as kept in the manifest (the one the client
/// sent, verified).
pub(crate) fn full_object(computed: &Checksum) -> Option<ObjectChecksum> {
    ChecksumAlgorithm::ALL.into_iter().find_map(|algorithm| {
        field(computed, algorithm).map(|value| ObjectChecksum {
            algorithm,
            kind: ChecksumKind::FullObject,
            value,
            parts: Vec::new(),
        })
    })
}

/// S3's name of a checksum type.
pub(crate) fn type_of(kind: ChecksumKind) -> ChecksumType {
    ChecksumType::from_static(match kind {
        ChecksumKind::FullObject => ChecksumType::FULL_OBJECT,
        ChecksumKind::Composite => ChecksumType::COMPOSITE,
    })
}

/// S3's name of an algorithm (`CRC32`, …).
pub(crate) fn algorithm_name(algorithm: ChecksumAlgorithm) -> s3s::dto::ChecksumAlgorithm {
    s3s::dto::ChecksumAlgorithm::from(algorithm.name().to_ascii_uppercase())
}

/// The algorithm and type a CreateMultipartUpload (or a copy) asks for.
/// CRC64NVME has only full-object checksums, SHA ones only composite; a
/// CRC defaults to composite, as on S3.
pub(crate) fn requested(
    algorithm: Option<&s3s::dto::ChecksumAlgorithm>,
    kind: Option<&ChecksumType>,
) -> S3Result<Option<(ChecksumAlgorithm, ChecksumKind)>> {
    let Some(algorithm) = algorithm else {
        if kind.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
            ));
        }
        return Ok(None);
    };
    let algorithm = ChecksumAlgorithm::from_name(algorithm.as_str()).ok_or_else(|| {
        s3_error!(
            InvalidRequest,
            "Checksum algorithm {} is not supported",
            algorithm.as_str()
        )
    })?;
    let kind = match kind.map(ChecksumType::as_str) {
        None if algorithm == ChecksumAlgorithm::Crc64nvme => ChecksumKind::FullObject,
        None => ChecksumKind::Composite,
        Some(ChecksumType::FULL_OBJECT) => ChecksumKind::FullObject,
        Some(ChecksumType::COMPOSITE) => ChecksumKind::Composite,
        Some(other) => {
            return Err(s3_error!(InvalidRequest, "Unknown checksum type {other}"));
        }
    };
    match (algorithm.is_crc(), kind) {
        (false, ChecksumKind::FullObject) => Err(s3_error!(
            InvalidRequest,
            "The {} algorithm supports only the COMPOSITE checksum type",
            algorithm.name().to_ascii_uppercase()
        )),
        (true, ChecksumKind::Composite) if algorithm == ChecksumAlgorithm::Crc64nvme => {
            Err(s3_error!(
                InvalidRequest,
                "The CRC64NVME algorithm supports only the FULL_OBJECT checksum type"
            ))
        }
        _ => Ok(Some((algorithm, kind))),
    }
}

fn hasher_for(algorithm: ChecksumAlgorithm) -> ChecksumHasher {
    let mut hasher = ChecksumHasher::default();
    match algorithm {
        ChecksumAlgorithm::Crc32 => hasher.crc32 = Some(Crc32::new()),
        ChecksumAlgorithm::Crc32c => hasher.crc32c = Some(Crc32c::new()),
        ChecksumAlgorithm::Crc64nvme => hasher.crc64nvme = Some(Crc64Nvme::new()),
        ChecksumAlgorithm::Sha1 => hasher.sha1 = Some(Sha1::new()),
        ChecksumAlgorithm::Sha256 => hasher.sha256 = Some(Sha256::new()),
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
        let from_header = ChecksumAlgorithm::ALL
            .into_iter()
            .find_map(|a| field(claimed, a).map(|value| (a, Claimed::Header(value))));
        let announced = headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase());
        let (algorithm, claimed) = match (from_header, announced) {
            (Some(found), _) => found,
            (None, Some(trailer)) => {
                let algorithm = trailer
                    .strip_prefix("x-amz-checksum-")
                    .and_then(ChecksumAlgorithm::from_name)
                    .ok_or_else(|| s3_error!(InvalidRequest, "unsupported trailer {trailer}"))?;
                (algorithm, Claimed::Trailer(trailers))
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Self::new(algorithm, claimed)))
    }

    fn new(algorithm: ChecksumAlgorithm, claimed: Claimed) -> Self {
        Self {
            algorithm,
            claimed,
            hasher: Arc::new(Mutex::new(Some(hasher_for(algorithm)))),
        }
    }

    /// Only computes `algorithm` over the body (nothing was claimed).
    pub(crate) fn computing(algorithm: ChecksumAlgorithm) -> Self {
        Self::new(algorithm, Claimed::Nothing)
    }

    pub(crate) fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
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
            Claimed::Header(value) => value.clone(),
            Claimed::Nothing => return Ok(computed),
            Claimed::Trailer(trailers) => {
                let name = format!("x-amz-checksum-{}", self.algorithm.name());
                let value = trailers.as_ref().and_then(|t| {
                    t.read(|headers| {
                        headers
                            .get(name.as_str())
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    })
                    .flatten()
                });
                value.ok_or_else(|| {
                    s3_error!(
                        InvalidRequest,
                        "the x-amz-checksum-{} trailer is missing",
                        self.algorithm.name()
                    )
                })?
            }
        };
        if field(&computed, self.algorithm).as_deref() != Some(claimed.trim()) {
            return Err(s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                self.algorithm.name().to_ascii_uppercase()
            ));
        }
        Ok(computed)
    }
}

/// A completed multipart object's checksum from its parts' (base64 values
/// and sizes, in order): composite, the checksum of the concatenated part
/// digests with `-N`; full-object, the part CRCs combined as if the object
/// had been hashed whole.
pub(crate) fn combine_parts(
    algorithm: ChecksumAlgorithm,
    kind: ChecksumKind,
    parts: &[(String, u64)],
) -> S3Result<ObjectChecksum> {
    let digests = parts
        .iter()
        .map(|(value, _)| {
            STANDARD
                .decode(value)
                .map_err(|_| s3_error!(InvalidPart, "a part checksum is not base64"))
        })
        .collect::<S3Result<Vec<_>>>()?;
    let value = match kind {
        ChecksumKind::Composite => {
            let mut hasher = hasher_for(algorithm);
            for digest in &digests {
                hasher.update(digest);
            }
            let whole = field(&hasher.finalize(), algorithm).unwrap_or_default();
            format!("{whole}-{}", parts.len())
        }
        ChecksumKind::FullObject => {
            let crc = match algorithm {
                ChecksumAlgorithm::Crc32 => crc_fast::CrcAlgorithm::Crc32IsoHdlc,
                ChecksumAlgorithm::Crc32c => crc_fast::CrcAlgorithm::Crc32Iscsi,
                ChecksumAlgorithm::Crc64nvme => crc_fast::CrcAlgorithm::Crc64Nvme,
                _ => {
                    return Err(s3_error!(
                        InvalidRequest,
                        "only CRCs have full-object multipart checksums"
                    ));
                }
            };
            let width = if algorithm == ChecksumAlgorithm::Crc64nvme {
                8
            } else {
                4
            };
            let mut combined: Option<u64> = None;
            for (digest, (_, size)) in digests.iter().zip(parts) {
                if digest.len() != width {
                    return Err(s3_error!(
                        InvalidPart,
                        "a part checksum has the wrong length"
                    ));
                }
                let mut be = [0u8; 8];
                be[8 - width..].copy_from_slice(digest);
                let part = u64::from_be_bytes(be);
                combined = Some(match combined {
                    None => part,
                    Some(sum) => crc_fast::checksum_combine(crc, sum, part, *size),
                });
            }
            let bytes = combined.unwrap_or_default().to_be_bytes();
            STANDARD.encode(&bytes[8 - width..])
        }
    };
    Ok(ObjectChecksum {
        algorithm,
        kind,
        value,
        parts: parts.iter().map(|(value, _)| value.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut hasher = hasher_for(algorithm);
        hasher.update(data);
        field(&hasher.finalize(), algorithm).expect("computed")
    }

    #[test]
    fn part_crcs_combine_into_the_whole_objects_crc() {
        let (a, b, c) = (vec![1u8; 5000], vec![2u8; 77], vec![3u8; 1]);
        let whole: Vec<u8> = [a.as_slice(), &b, &c].concat();
        for algorithm in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64nvme,
        ] {
            let parts: Vec<(String, u64)> = [&a, &b, &c]
                .iter()
                .map(|p| (digest(algorithm, p), p.len() as u64))
                .collect();
            let combined =
                combine_parts(algorithm, ChecksumKind::FullObject, &parts).expect("combines");
            assert_eq!(combined.value, digest(algorithm, &whole), "{algorithm:?}");
            assert_eq!(combined.parts.len(), 3);
        }
    }

    #[test]
    fn a_composite_checksum_is_over_the_part_digests() {
        let parts: Vec<(String, u64)> = [b"one".as_slice(), b"two"]
            .iter()
            .map(|p| (digest(ChecksumAlgorithm::Sha256, p), p.len() as u64))
            .collect();
        let raw: Vec<u8> = parts
            .iter()
            .flat_map(|(v, _)| STANDARD.decode(v).expect("base64"))
            .collect();
        let combined = combine_parts(ChecksumAlgorithm::Sha256, ChecksumKind::Composite, &parts)
            .expect("combines");
        assert_eq!(
            combined.value,
            format!("{}-2", digest(ChecksumAlgorithm::Sha256, &raw))
        );
        assert!(combine_parts(ChecksumAlgorithm::Sha1, ChecksumKind::FullObject, &parts).is_err());
    }
}
