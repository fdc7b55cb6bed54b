//! `cairn bench stages`: the machine's single-core rate for each per-byte
//! stage of the data path, so end-to-end numbers can be read as a fraction
//! of the machine's limit (BENCHMARKS.md). Each stage runs on one thread
//! over the same amount of data:
//!
//! - **md5**: OpenSSL MD5, the gateway's ETag stage (one serial stream per
//!   PUT, so it bounds a single-stream PUT);
//! - **encode_blake3**: Reed–Solomon encode of full stripes plus blake3 of
//!   all k+m blocks, per input byte (the gateway's coding stage);
//! - **loopback_copy**: one TCP stream over 127.0.0.1 (a send and a receive
//!   copy), per byte moved.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use cairn_core::codec::{CodecParams, ErasureCodec};
use cairn_core::integrity::hash_block;
use openssl::hash::{Hasher, MessageDigest};
use rand::Rng;
use serde::Serialize;

/// Rates in MB/s (10^6 bytes per second), one core each.
#[derive(Debug, Clone, Serialize)]
pub struct StageRates {
    pub bytes: u64,
    pub md5_mb_per_sec: f64,
    pub encode_blake3_mb_per_sec: f64,
    pub loopback_copy_mb_per_sec: f64,
}

impl StageRates {
    /// The slowest stage, by name and rate.
    pub fn slowest(&self) -> (&'static str, f64) {
        [
            ("md5", self.md5_mb_per_sec),
            ("encode_blake3", self.encode_blake3_mb_per_sec),
            ("loopback_copy", self.loopback_copy_mb_per_sec),
        ]
        .into_iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or(("md5", self.md5_mb_per_sec))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("MD5: {0}")]
    Md5(#[from] openssl::error::ErrorStack),
    #[error("codec: {0}")]
    Codec(#[from] cairn_core::codec::CodecError),
    #[error("loopback: {0}")]
    Io(#[from] std::io::Error),
}

/// Piece size. MD5 cycles through 8 pieces (8 MiB) and encoding through
/// two stripes (6 MiB): past L2 here, so the data comes from L3 as it does
/// on the real path, where it was just received.
const PIECE: usize = 1 << 20;

/// Measures every stage over `bytes` bytes.
pub fn measure(bytes: u64) -> Result<StageRates, StageError> {
    Ok(StageRates {
        bytes,
        md5_mb_per_sec: md5_rate(bytes)?,
        encode_blake3_mb_per_sec: encode_blake3_rate(bytes)?,
        loopback_copy_mb_per_sec: loopback_rate(bytes)?,
    })
}

fn random_pieces(count: usize) -> Vec<Vec<u8>> {
    let mut rng = rand::rng();
    (0..count)
        .map(|_| {
            let mut piece = vec![0u8; PIECE];
            rng.fill(&mut piece[..]);
            piece
        })
        .collect()
}

fn rate(bytes: u64, started: Instant) -> f64 {
    bytes as f64 / started.elapsed().as_secs_f64().max(1e-9) / 1e6
}

fn md5_rate(bytes: u64) -> Result<f64, StageError> {
    let pieces = random_pieces(8);
    let mut md5 = Hasher::new(MessageDigest::md5())?;
    let started = Instant::now();
    for i in 0..bytes.div_ceil(PIECE as u64) as usize {
        md5.update(&pieces[i % pieces.len()])?;
    }
    std::hint::black_box(md5.finish()?);
    Ok(rate(bytes.div_ceil(PIECE as u64) * PIECE as u64, started))
}

fn encode_blake3_rate(bytes: u64) -> Result<f64, StageError> {
    let codec = ErasureCodec::new(CodecParams::DEFAULT)?;
    let mut stripes = [codec.stripe_buffer(), codec.stripe_buffer()];
    let capacity = stripes[0].capacity();
    let mut rng = rand::rng();
    for stripe in &mut stripes {
        rng.fill(stripe.fill_region());
        stripe.set_data_len(capacity)?;
    }
    let rounds = bytes.div_ceil(capacity as u64) as usize;
    let started = Instant::now();
    for i in 0..rounds {
        let stripe = &mut stripes[i % 2];
        codec.encode(stripe)?;
        for block in 0..stripe.block_count() {
            std::hint::black_box(hash_block(stripe.block(block)));
        }
    }
    Ok(rate((rounds * capacity) as u64, started))
}

fn loopback_rate(bytes: u64) -> Result<f64, StageError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let total = bytes.div_ceil(PIECE as u64) * PIECE as u64;
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        let piece = vec![7u8; PIECE];
        for _ in 0..total / PIECE as u64 {
            stream.write_all(&piece)?;
        }
        Ok(())
    });
    let (mut stream, _) = listener.accept()?;
    let mut buffer = vec![0u8; PIECE];
    let mut received = 0u64;
    let started = Instant::now();
    while received < total {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    let mb_per_sec = rate(received, started);
    sender
        .join()
        .map_err(|_| std::io::Error::other("sender panicked"))??;
    Ok(mb_per_sec)
}

/// A table of the rates.
pub fn render(rates: &StageRates) -> String {
    let (name, slowest) = rates.slowest();
    format!(
        "single-core stage rates over {} MiB\n  md5            {:8.1} MB/s\n  encode+blake3  {:8.1} MB/s\n  loopback copy  {:8.1} MB/s\nslowest: {name} ({slowest:.1} MB/s)",
        rates.bytes >> 20,
        rates.md5_mb_per_sec,
        rates.encode_blake3_mb_per_sec,
        rates.loopback_copy_mb_per_sec,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_reports_a_positive_rate_and_the_slowest_is_the_minimum() {
        let rates = measure(8 << 20).expect("measure");
        for rate in [
            rates.md5_mb_per_sec,
            rates.encode_blake3_mb_per_sec,
            rates.loopback_copy_mb_per_sec,
        ] {
            assert!(rate.is_finite() && rate > 0.0, "{rates:?}");
        }
        let (_, slowest) = rates.slowest();
        assert!(slowest <= rates.md5_mb_per_sec);
        assert!(slowest <= rates.encode_blake3_mb_per_sec);
        assert!(slowest <= rates.loopback_copy_mb_per_sec);
    }
}
