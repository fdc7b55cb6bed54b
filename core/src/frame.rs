//! Block frames: how chunk bytes travel between the gateway, the scrubber
//! and storage nodes (both directions: PUT bodies and GET responses).
//!
//! ```text
//! block  0x01 | index u32 | len u32 | blake3 32 B | len bytes of data
//! end    0x02 | block_count u32 | merkle root 32 B
//! error  0x03 | block index u32 | msg_len u32 | msg (UTF-8)
//! ```
//! Integers are little-endian. Every block carries its hash, so each side
//! verifies every block as it arrives. A stream is complete only with its
//! `end` frame, which repeats the block count and the chunk's Merkle root: a
//! connection cut at a frame boundary is still recognised as truncated. A
//! reader that meets a corrupt block on disk sends an `error` frame naming
//! it, never the bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::integrity::{BlockHash, MerkleRoot};

pub const TAG_BLOCK: u8 = 0x01;
pub const TAG_END: u8 = 0x02;
pub const TAG_ERROR: u8 = 0x03;
/// Bytes before a block frame's data.
pub const BLOCK_HEAD_LEN: usize = 1 + 4 + 4 + 32;
/// Bytes of an end frame.
pub const END_LEN: usize = 1 + 4 + 32;
const ERROR_HEAD_LEN: usize = 1 + 4 + 4;
/// Longest error message accepted.
pub const MAX_ERROR_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Block {
        index: u32,
        hash: BlockHash,
        data: Bytes,
    },
    End {
        block_count: u32,
        merkle_root: MerkleRoot,
    },
    Error {
        block: u32,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unknown frame tag {0:#04x}")]
    UnknownTag(u8),
    #[error("block frame of {len} bytes exceeds the limit of {max}")]
    BlockTooLarge { len: usize, max: usize },
    #[error("error frame message of {0} bytes is too long")]
    MessageTooLong(usize),
    #[error("stream ended inside a frame ({0} bytes left over)")]
    Truncated(usize),
}

/// The head of a block frame; the data follows separately so it need not be
/// copied into one buffer with the head.
pub fn block_head(index: u32, hash: &BlockHash, len: usize) -> [u8; BLOCK_HEAD_LEN] {
    let mut out = [0u8; BLOCK_HEAD_LEN];
    out[0] = TAG_BLOCK;
    out[1..5].copy_from_slice(&index.to_le_bytes());
    out[5..9].copy_from_slice(&(len as u32).to_le_bytes());
    out[9..41].copy_from_slice(&hash.0);
    out
}

pub fn end_frame(block_count: u32, merkle_root: &MerkleRoot) -> Bytes {
    let mut out = BytesMut::with_capacity(END_LEN);
    out.put_u8(TAG_END);
    out.put_u32_le(block_count);
    out.put_slice(&merkle_root.0);
    out.freeze()
}

pub fn error_frame(block: u32, message: &str) -> Bytes {
    let message = truncate_utf8(message, MAX_ERROR_LEN);
    let mut out = BytesMut::with_capacity(ERROR_HEAD_LEN + message.len());
    out.put_u8(TAG_ERROR);
    out.put_u32_le(block);
    out.put_u32_le(message.len() as u32);
    out.put_slice(message.as_bytes());
    out.freeze()
}

/// Incremental decoder: push bytes as they arrive, pop whole frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_block: usize,
}

impl FrameDecoder {
    /// `max_block` bounds the memory one frame may claim.
    pub fn new(max_block: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_block,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(&tag) = self.buf.first() else {
            return Ok(None);
        };
        match tag {
            TAG_BLOCK => {
                if self.buf.len() < BLOCK_HEAD_LEN {
                    return Ok(None);
                }
                let len = u32_at(&self.buf, 5) as usize;
                if len > self.max_block {
                    return Err(FrameError::BlockTooLarge {
                        len,
                        max: self.max_block,
                    });
                }
                if self.buf.len() < BLOCK_HEAD_LEN + len {
                    self.buf.reserve(BLOCK_HEAD_LEN + len - self.buf.len());
                    return Ok(None);
                }
                let index = u32_at(&self.buf, 1);
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&self.buf[9..41]);
                self.buf.advance(BLOCK_HEAD_LEN);
                let data = self.buf.split_to(len).freeze();
                Ok(Some(Frame::Block {
                    index,
                    hash: BlockHash(hash),
                    data,
                }))
            }
            TAG_END => {
                if self.buf.len() < END_LEN {
                    return Ok(None);
                }
                let block_count = u32_at(&self.buf, 1);
                let mut root = [0u8; 32];
                root.copy_from_slice(&self.buf[5..37]);
                self.buf.advance(END_LEN);
                Ok(Some(Frame::End {
                    block_count,
                    merkle_root: MerkleRoot(root),
                }))
            }
            TAG_ERROR => {
                if self.buf.len() < ERROR_HEAD_LEN {
                    return Ok(None);
                }
                let len = u32_at(&self.buf, 5) as usize;
                if len > MAX_ERROR_LEN {
                    return Err(FrameError::MessageTooLong(len));
                }
                if self.buf.len() < ERROR_HEAD_LEN + len {
                    return Ok(None);
                }
                let block = u32_at(&self.buf, 1);
                self.buf.advance(ERROR_HEAD_LEN);
                let message = String::from_utf8_lossy(&self.buf.split_to(len)).into_owned();
                Ok(Some(Frame::Error { block, message }))
            }
            other => Err(FrameError::UnknownTag(other)),
        }
    }

    /// Call at end of stream: leftover bytes mean the stream was cut.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated(self.buf.len()))
        }
    }
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::hash_block;

    fn encoded() -> (Vec<u8>, Vec<Frame>) {
        let data = Bytes::from_static(b"hello blocks");
        let hash = hash_block(&data);
        let root = MerkleRoot([9; 32]);
        let mut bytes = block_head(0, &hash, data.len()).to_vec();
        bytes.extend_from_slice(&data);
        bytes.extend_from_slice(&error_frame(3, "block 3 is corrupt"));
        bytes.extend_from_slice(&end_frame(1, &root));
        let frames = vec![
            Frame::Block {
                index: 0,
                hash,
                data,
            },
            Frame::Error {
                block: 3,
                message: "block 3 is corrupt".into(),
            },
            Frame::End {
                block_count: 1,
                merkle_root: root,
            },
        ];
        (bytes, frames)
    }

    #[test]
    fn decodes_frames_split_at_every_byte_boundary() {
        let (bytes, expected) = encoded();
        for split in 1..bytes.len() {
            let mut decoder = FrameDecoder::new(1024);
            let mut frames = Vec::new();
            for piece in bytes.chunks(split) {
                decoder.push(piece);
                while let Some(frame) = decoder.next_frame().expect("valid") {
                    frames.push(frame);
                }
            }
            decoder.finish().expect("complete");
            assert_eq!(frames, expected, "split {split}");
        }
    }

    #[test]
    fn rejects_oversized_blocks_unknown_tags_and_truncation() {
        let (bytes, _) = encoded();
        let mut decoder = FrameDecoder::new(4);
        decoder.push(&bytes);
        assert!(matches!(
            decoder.next_frame(),
            Err(FrameError::BlockTooLarge { len: 12, max: 4 })
        ));
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&[0x7f]);
        assert_eq!(decoder.next_frame(), Err(FrameError::UnknownTag(0x7f)));
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&bytes[..10]);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.finish(), Err(FrameError::Truncated(10)));
    }
}
