//! The command interpreter: one [`Command`] applied as one transaction.
//! Reads see committed state; writes collect in one `WriteBatch` that the
//! caller writes with a synced WAL.

use cairn_core::ids::{BlobId, NodeId, validate_bucket_name, validate_object_key};
use cairn_core::integrity::root_of_roots;
use cairn_core::manifest::{BlobManifest, ChunkState, ObjectManifest};
use cairn_meta_api::model::{
    BucketRecord, ChunkOwner, Command, CompletedPart, GarbageEntry, ObjectRecord, Outcome,
    PartRecord, Precondition, UploadRecord,
};
use md5::{Digest, Md5};
use rocksdb::WriteBatch;

use crate::keys::{self, bucket_anchor, catalogue_key};

use super::{CatalogError, KeyRange, MIN_PART_SIZE, Shard, encode};

/// One command being applied: reads see committed state, writes collect in
/// a batch.
pub(super) struct Tx<'a> {
    pub(super) shard: &'a Shard,
    pub(super) range: &'a KeyRange,
    pub(super) batch: WriteBatch,
    pub(super) now_ms: u64,
    /// The id of anything this command creates (an upload id).
    pub(super) fresh_id: BlobId,
    /// The shard's version counter, when the command advanced it.
    pub(super) sequence: Option<u64>,
    /// The GC queue's id counter, when the command queued garbage.
    pub(super) garbage: Option<u64>,
}

impl Tx<'_> {
    pub(super) fn apply(&mut self, command: &Command) -> Result<Outcome, CatalogError> {
        match command {
            Command::CreateBucket { name, owner } => self.create_bucket(name, owner),
            Command::DeleteBucket { name } => self.delete_bucket(name),
            Command::CommitObject {
                bucket,
                key,
                manifest,
                precondition,
            } => {
                self.check_bucket(bucket)?;
                validate_object_key(key).map_err(CatalogError::InvalidKey)?;
                self.commit(bucket, key, manifest.clone(), precondition)
            }
            Command::DeleteObject {
                bucket,
                key,
                precondition,
            } => self.delete_object(bucket, key, precondition),
            Command::CreateUpload {
                bucket,
                key,
                template,
            } => {
                self.check_bucket(bucket)?;
                validate_object_key(key).map_err(CatalogError::InvalidKey)?;
                let upload_id = self.fresh_id.to_hex();
                let record = UploadRecord {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    upload_id: upload_id.clone(),
                    created_ms: self.now_ms,
                    template: template.clone(),
                    parts: Default::default(),
                };
                self.batch.put(
                    keys::upload(&catalogue_key(bucket, key), &upload_id),
                    encode(&record),
                );
                Ok(Outcome::UploadCreated { upload_id })
            }
            Command::PutPart {
                bucket,
                key,
                upload_id,
                part,
            } => self.put_part(bucket, key, upload_id, part),
            Command::CompleteUpload {
                bucket,
                key,
                upload_id,
                parts,
            } => self.complete_upload(bucket, key, upload_id, parts),
            Command::AbortUpload {
                bucket,
                key,
                upload_id,
            } => {
                let mut upload = self.upload(bucket, key, upload_id)?;
                for part in std::mem::take(&mut upload.parts).into_values() {
                    self.discard_blob(part.blob)?;
                }
                self.batch
                    .delete(keys::upload(&catalogue_key(bucket, key), upload_id));
                Ok(Outcome::Done)
            }
            Command::MoveChunk {
                bucket,
                key,
                blob,
                index,
                from,
                to,
                merkle_root,
            } => self.move_chunk(bucket, key, *blob, *index, from, to, *merkle_root),
            Command::AckGarbage { ids } => {
                for id in ids {
                    self.batch.delete(keys::garbage(*id));
                }
                Ok(Outcome::Done)
            }
        }
    }

    fn next_sequence(&mut self) -> Result<u64, CatalogError> {
        let next = match self.sequence {
            Some(s) => s + 1,
            None => self.shard.counter("sequence")? + 1,
        };
        self.sequence = Some(next);
        Ok(next)
    }

    fn create_bucket(&mut self, name: &str, owner: &str) -> Result<Outcome, CatalogError> {
        validate_bucket_name(name).map_err(CatalogError::InvalidBucketName)?;
        if let Some(existing) = self.shard.get::<BucketRecord>(&keys::bucket(name))? {
            return Err(if existing.owner == owner {
                CatalogError::BucketAlreadyOwnedByYou(name.to_owned())
            } else {
                CatalogError::BucketAlreadyExists(name.to_owned())
            });
        }
        let record = BucketRecord {
            name: name.to_owned(),
            owner: owner.to_owned(),
            created_ms: self.now_ms,
        };
        self.batch.put(keys::bucket(name), encode(&record));
        Ok(Outcome::Done)
    }

    fn delete_bucket(&mut self, name: &str) -> Result<Outcome, CatalogError> {
        if self
            .shard
            .get::<BucketRecord>(&keys::bucket(name))?
            .is_none()
        {
            return Err(CatalogError::NoSuchBucket(name.to_owned()));
        }
        if self.shard.has_content(name)? {
            return Err(CatalogError::BucketNotEmpty(name.to_owned()));
        }
        self.batch.delete(keys::bucket(name));
        Ok(Outcome::Done)
    }

    /// Rejects writes into a missing bucket when this shard holds the
    /// bucket's record; otherwise the client checked it.
    fn check_bucket(&self, bucket: &str) -> Result<(), CatalogError> {
        let anchor = bucket_anchor(bucket);
        if self.range.contains(&anchor)
            && self
                .shard
                .get::<BucketRecord>(&keys::bucket(bucket))?
                .is_none()
        {
            return Err(CatalogError::NoSuchBucket(bucket.to_owned()));
        }
        Ok(())
    }

    fn check_precondition(
        current: Option<&ObjectRecord>,
        precondition: &Precondition,
    ) -> Result<(), CatalogError> {
        match (precondition, current) {
            (Precondition::None, _) | (Precondition::Absent, None) => Ok(()),
            (Precondition::Absent, Some(c)) => Err(CatalogError::PreconditionFailed(format!(
                "object exists at version {}",
                c.version_id
            ))),
            (Precondition::VersionIs(v), Some(c)) if *v == c.version_id => Ok(()),
            (Precondition::VersionIs(v), current) => {
                Err(CatalogError::PreconditionFailed(format!(
                    "expected version {v}, found {}",
                    current.map_or("none", |c| c.version_id.as_str())
                )))
            }
        }
    }

    fn commit(
        &mut self,
        bucket: &str,
        key: &str,
        manifest: ObjectManifest,
        precondition: &Precondition,
    ) -> Result<Outcome, CatalogError> {
        let cat = catalogue_key(bucket, key);
        let current: Option<ObjectRecord> = self.shard.get(&keys::object(&cat))?;
        Self::check_precondition(current.as_ref(), precondition)?;
        let sequence = self.next_sequence()?;
        let version_id = format!("{sequence:016x}");
        if let Some(old) = current {
            for blob in old.manifest.parts {
                self.discard_blob(blob)?;
            }
        }
        let owner = ChunkOwner {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: Some(version_id.clone()),
            upload_id: None,
        };
        for blob in &manifest.parts {
            self.index_blob(blob, &owner);
        }
        let record = ObjectRecord {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: version_id.clone(),
            sequence,
            manifest,
        };
        self.batch.put(keys::object(&cat), encode(&record));
        Ok(Outcome::Committed {
            version_id,
            sequence,
        })
    }

    fn delete_object(
        &mut self,
        bucket: &str,
        key: &str,
        precondition: &Precondition,
    ) -> Result<Outcome, CatalogError> {
        let cat = catalogue_key(bucket, key);
        let current: Option<ObjectRecord> = self.shard.get(&keys::object(&cat))?;
        Self::check_precondition(current.as_ref(), precondition)?;
        let Some(current) = current else {
            return Ok(Outcome::Deleted { existed: false });
        };
        for blob in current.manifest.parts {
            self.discard_blob(blob)?;
        }
        self.batch.delete(keys::object(&cat));
        Ok(Outcome::Deleted { existed: true })
    }

    fn upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, CatalogError> {
        self.shard
            .get(&keys::upload(&catalogue_key(bucket, key), upload_id))?
            .ok_or_else(|| CatalogError::NoSuchUpload(upload_id.to_owned()))
    }

    fn put_part(
        &mut self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: &PartRecord,
    ) -> Result<Outcome, CatalogError> {
        if !(1..=10_000).contains(&part.part_number) {
            return Err(CatalogError::Malformed(format!(
                "part number {} is outside 1..=10000",
                part.part_number
            )));
        }
        let mut upload = self.upload(bucket, key, upload_id)?;
        if let Some(old) = upload.parts.remove(&part.part_number) {
            self.discard_blob(old.blob)?;
        }
        let owner = ChunkOwner {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: None,
            upload_id: Some(upload_id.to_owned()),
        };
        self.index_blob(&part.blob, &owner);
        upload.parts.insert(part.part_number, part.clone());
        self.batch.put(
            keys::upload(&catalogue_key(bucket, key), upload_id),
            encode(&upload),
        );
        Ok(Outcome::Done)
    }

    fn complete_upload(
        &mut self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<Outcome, CatalogError> {
        let mut upload = self.upload(bucket, key, upload_id)?;
        if parts.is_empty() {
            return Err(CatalogError::Malformed(
                "CompleteMultipartUpload names no parts".into(),
            ));
        }
        if parts
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(CatalogError::InvalidPartOrder);
        }
        let mut chosen = Vec::with_capacity(parts.len());
        for (i, wanted) in parts.iter().enumerate() {
            let etag = wanted.etag.trim_matches('"');
            let part = upload
                .parts
                .remove(&wanted.part_number)
                .filter(|p| p.etag.eq_ignore_ascii_case(etag))
                .ok_or(CatalogError::InvalidPart {
                    part_number: wanted.part_number,
                })?;
            if i + 1 < parts.len() && part.size < MIN_PART_SIZE {
                return Err(CatalogError::EntityTooSmall {
                    part_number: part.part_number,
                    size: part.size,
                });
            }
            chosen.push(part);
        }
        let mut md5s = Md5::new();
        for part in &chosen {
            let digest = hex::decode(&part.etag)
                .map_err(|_| CatalogError::Corrupt(format!("part ETag {:?}", part.etag)))?;
            md5s.update(&digest);
        }
        for unused in std::mem::take(&mut upload.parts).into_values() {
            self.discard_blob(unused.blob)?;
        }
        let mut manifest = upload.template.clone();
        manifest.size = chosen.iter().map(|p| p.size).sum();
        manifest.etag = format!("{}-{}", hex::encode(md5s.finalize()), chosen.len());
        manifest.created_ms = self.now_ms;
        manifest.parts = chosen.into_iter().map(|p| p.blob).collect();
        // The parts' reverse-index entries are rewritten with the new owner.
        let outcome = self.commit(bucket, key, manifest, &Precondition::None)?;
        self.batch
            .delete(keys::upload(&catalogue_key(bucket, key), upload_id));
        Ok(outcome)
    }

    #[allow(clippy::too_many_arguments)]
    fn move_chunk(
        &mut self,
        bucket: &str,
        key: &str,
        blob: BlobId,
        index: u8,
        from: &NodeId,
        to: &NodeId,
        merkle_root: cairn_core::integrity::MerkleRoot,
    ) -> Result<Outcome, CatalogError> {
        let cat = catalogue_key(bucket, key);
        let conflict = |why: String| CatalogError::Conflict(why);
        let mut record: ObjectRecord = self
            .shard
            .get(&keys::object(&cat))?
            .ok_or_else(|| conflict(format!("{cat} no longer exists")))?;
        let owner = ChunkOwner {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: Some(record.version_id.clone()),
            upload_id: None,
        };
        let part = record
            .manifest
            .parts
            .iter_mut()
            .find(|p| p.blob == blob)
            .ok_or_else(|| conflict(format!("blob {blob} is no longer part of {cat}")))?;
        let position = part
            .chunks
            .iter()
            .position(|c| c.index == index && c.node == *from)
            .ok_or_else(|| conflict(format!("chunk {blob}/{index} is not on {from}")))?;
        // What stays behind on `from` becomes garbage (deleted once reachable).
        let left_behind = BlobManifest {
            chunks: vec![part.chunks[position].clone()],
            ..part.clone()
        };
        let chunk = &mut part.chunks[position];
        chunk.node = to.clone();
        chunk.state = ChunkState::Stored;
        chunk.merkle_root = merkle_root;
        part.root = root_of_roots(
            &part
                .chunks
                .iter()
                .map(|c| c.merkle_root)
                .collect::<Vec<_>>(),
        );
        self.batch.delete(keys::node_chunk(from, &blob, index));
        self.batch
            .put(keys::node_chunk(to, &blob, index), encode(&owner));
        self.batch.put(keys::object(&cat), encode(&record));
        if from != to {
            self.queue_garbage(left_behind)?;
        }
        Ok(Outcome::Done)
    }

    fn index_blob(&mut self, blob: &BlobManifest, owner: &ChunkOwner) {
        let value = encode(owner);
        for chunk in &blob.chunks {
            self.batch.put(
                keys::node_chunk(&chunk.node, &blob.blob, chunk.index),
                &value,
            );
        }
    }

    /// Drops a blob from the reverse index and queues its chunks for GC.
    fn discard_blob(&mut self, blob: BlobManifest) -> Result<(), CatalogError> {
        for chunk in &blob.chunks {
            self.batch
                .delete(keys::node_chunk(&chunk.node, &blob.blob, chunk.index));
        }
        self.queue_garbage(blob)
    }

    fn queue_garbage(&mut self, blob: BlobManifest) -> Result<(), CatalogError> {
        let id = match self.garbage {
            Some(g) => g + 1,
            None => self.shard.counter("garbage")? + 1,
        };
        self.garbage = Some(id);
        let entry = GarbageEntry {
            id,
            queued_ms: self.now_ms,
            blob,
        };
        self.batch.put(keys::garbage(id), encode(&entry));
        Ok(())
    }
}
