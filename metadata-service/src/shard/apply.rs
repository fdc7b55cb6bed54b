//! The command interpreter: one [`Command`] applied as one transaction.
//! Reads see committed state; writes collect in one `WriteBatch` that the
//! caller writes with a synced WAL.

use cairn_core::ids::{BlobId, NodeId, validate_bucket_name, validate_object_key};
use cairn_core::integrity::root_of_roots;
use cairn_core::manifest::{BlobManifest, ChunkState, ObjectManifest};
use cairn_meta_api::model::{
    BucketRecord, BucketSetting, ChunkOwner, Command, CompletedPart, GarbageEntry, NULL_VERSION,
    ObjectLock, ObjectRecord, Outcome, PartRecord, Precondition, RetentionMode, UploadRecord,
    VersionChange, VersionLock, Versioning,
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
            Command::CreateBucket {
                name,
                owner,
                object_lock,
                settings,
            } => self.create_bucket(name, owner, *object_lock, settings),
            Command::DeleteBucket { name } => self.delete_bucket(name),
            Command::SetVersioning { bucket, state } => self.set_versioning(bucket, *state),
            Command::SetObjectLock { bucket, config } => self.set_object_lock(bucket, config),
            Command::SetBucketSetting { bucket, setting } => {
                self.update_bucket(bucket, |record| setting.apply_to(record))
            }
            Command::UpdateVersion {
                bucket,
                key,
                version_id,
                change,
            } => self.update_version(bucket, key, version_id.as_deref(), change),
            Command::CommitObject {
                bucket,
                key,
                manifest,
                precondition,
                versioning,
                lock,
            } => {
                self.check_bucket(bucket)?;
                validate_object_key(key).map_err(CatalogError::InvalidKey)?;
                self.commit(
                    bucket,
                    key,
                    manifest.clone(),
                    precondition,
                    *versioning,
                    *lock,
                )
            }
            Command::DeleteObject {
                bucket,
                key,
                precondition,
                versioning,
                version_id,
                bypass_governance,
            } => match version_id {
                Some(version_id) => {
                    self.delete_version(bucket, key, version_id, precondition, *bypass_governance)
                }
                None => self.delete_object(bucket, key, precondition, *versioning),
            },
            Command::CreateUpload {
                bucket,
                key,
                template,
                lock,
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
                    lock: *lock,
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
                versioning,
                precondition,
                lock,
                checksum,
            } => self.complete_upload(
                bucket,
                key,
                upload_id,
                parts,
                (*versioning, *lock, checksum.clone()),
                precondition,
            ),
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

    fn bucket_record(&self, name: &str) -> Result<BucketRecord, CatalogError> {
        self.shard
            .get(&keys::bucket(name))?
            .ok_or_else(|| CatalogError::NoSuchBucket(name.to_owned()))
    }

    fn set_object_lock(
        &mut self,
        name: &str,
        config: &ObjectLock,
    ) -> Result<Outcome, CatalogError> {
        let mut record = self.bucket_record(name)?;
        if record.versioning != Versioning::Enabled {
            return Err(CatalogError::InvalidBucketState(
                "object lock needs versioning enabled on the bucket".into(),
            ));
        }
        record.object_lock = Some(config.clone());
        self.batch.put(keys::bucket(name), encode(&record));
        Ok(Outcome::Done)
    }

    /// Changes a version's tags, retention or legal hold in place.
    fn update_version(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: &VersionChange,
    ) -> Result<Outcome, CatalogError> {
        let cat = catalogue_key(bucket, key);
        let current: Option<ObjectRecord> = self.shard.get(&keys::object(&cat))?;
        let (row, mut record) = match (version_id, current) {
            (None, Some(current)) => (keys::object(&cat), current),
            (Some(id), Some(current)) if current.version_id == id => (keys::object(&cat), current),
            // No `o` row: no object, or a delete marker is current.
            (None, None) => {
                return Err(CatalogError::NoSuchKey {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                });
            }
            (Some(id), _) => match self
                .shard
                .versions(&cat)?
                .into_iter()
                .find(|v| v.version_id == id)
            {
                Some(v) => (keys::version(&cat, v.sequence), v),
                None => {
                    return Err(CatalogError::NoSuchVersion {
                        key: key.to_owned(),
                        version_id: id.to_owned(),
                    });
                }
            },
        };
        if record.delete_marker {
            return Err(CatalogError::Malformed(
                "a delete marker has no tags, retention or legal hold".into(),
            ));
        }
        match change {
            VersionChange::Tags(tags) => record.manifest.tags = tags.clone(),
            VersionChange::LegalHold(on) => record.legal_hold = *on,
            VersionChange::Acl(acl) => record.manifest.acl = acl.clone(),
            VersionChange::Retention {
                retention,
                bypass_governance,
            } => {
                if let Some(old) = record.retention.filter(|r| r.until_ms > self.now_ms) {
                    let weakened = match retention {
                        None => true,
                        Some(new) => new.until_ms < old.until_ms || new.mode != old.mode,
                    };
                    let allowed = match old.mode {
                        RetentionMode::Compliance => false,
                        RetentionMode::Governance => *bypass_governance,
                    };
                    if weakened && !allowed {
                        return Err(CatalogError::AccessDenied(format!(
                            "version {} is retained until {} in {:?} mode",
                            record.version_id, old.until_ms, old.mode
                        )));
                    }
                }
                record.retention = *retention;
            }
        }
        self.batch.put(row, encode(&record));
        Ok(Outcome::Done)
    }

    /// Refuses removing a version under a legal hold or an unexpired
    /// retention: the one place every removal path goes through.
    fn ensure_removable(
        &self,
        version: &ObjectRecord,
        bypass_governance: bool,
    ) -> Result<(), CatalogError> {
        match version.lock_refusal(self.now_ms, bypass_governance) {
            Some(why) => Err(CatalogError::AccessDenied(why)),
            None => Ok(()),
        }
    }

    fn create_bucket(
        &mut self,
        name: &str,
        owner: &str,
        object_lock: bool,
        settings: &[BucketSetting],
    ) -> Result<Outcome, CatalogError> {
        validate_bucket_name(name).map_err(CatalogError::InvalidBucketName)?;
        if let Some(existing) = self.shard.get::<BucketRecord>(&keys::bucket(name))? {
            return Err(if existing.owner == owner {
                CatalogError::BucketAlreadyOwnedByYou(name.to_owned())
            } else {
                CatalogError::BucketAlreadyExists(name.to_owned())
            });
        }
        let mut record = BucketRecord {
            name: name.to_owned(),
            owner: owner.to_owned(),
            created_ms: self.now_ms,
            // Object lock needs versioning, for good.
            versioning: if object_lock {
                Versioning::Enabled
            } else {
                Versioning::Unversioned
            },
            object_lock: object_lock.then(ObjectLock::default),
            tags: Default::default(),
            lifecycle: None,
            encryption: None,
            policy: None,
            public_access_block: None,
            cors: None,
            ownership: Default::default(),
            acl: None,
            storage_class: None,
        };
        for setting in settings {
            setting.apply_to(&mut record);
        }
        self.batch.put(keys::bucket(name), encode(&record));
        Ok(Outcome::Done)
    }

    /// Changes one setting of an existing bucket's record.
    fn update_bucket(
        &mut self,
        bucket: &str,
        change: impl FnOnce(&mut BucketRecord),
    ) -> Result<Outcome, CatalogError> {
        let mut record = self.bucket_record(bucket)?;
        change(&mut record);
        self.batch.put(keys::bucket(bucket), encode(&record));
        Ok(Outcome::Done)
    }

    fn set_versioning(&mut self, name: &str, state: Versioning) -> Result<Outcome, CatalogError> {
        let mut record: BucketRecord = self
            .shard
            .get(&keys::bucket(name))?
            .ok_or_else(|| CatalogError::NoSuchBucket(name.to_owned()))?;
        if state == Versioning::Unversioned && record.versioning.keeps_versions() {
            return Err(CatalogError::Malformed(
                "versioning can be suspended, never turned off again".into(),
            ));
        }
        if record.object_lock.is_some() && state != Versioning::Enabled {
            return Err(CatalogError::InvalidBucketState(
                "versioning cannot be suspended on a bucket with object lock".into(),
            ));
        }
        record.versioning = state;
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
        (bucket, key): (&str, &str),
    ) -> Result<(), CatalogError> {
        let failed = |why: String| Err(CatalogError::PreconditionFailed(why));
        match (precondition, current) {
            (Precondition::None, _) | (Precondition::Absent, None) => Ok(()),
            (Precondition::Absent, Some(c)) => {
                failed(format!("object exists at version {}", c.version_id))
            }
            (Precondition::Exists, Some(_)) => Ok(()),
            (Precondition::Exists | Precondition::EtagIs(_), None) => {
                Err(CatalogError::NoSuchKey {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                })
            }
            (Precondition::VersionIs(v), Some(c)) if *v == c.version_id => Ok(()),
            (Precondition::VersionIs(v), current) => failed(format!(
                "expected version {v}, found {}",
                current.map_or("none", |c| c.version_id.as_str())
            )),
            (Precondition::SequenceIs(s), Some(c)) if *s == c.sequence => Ok(()),
            (Precondition::SequenceIs(s), current) => failed(format!(
                "expected the commit at {s}, found {}",
                current.map_or("none".into(), |c| c.sequence.to_string())
            )),
            (Precondition::EtagIs(e), Some(c)) if e.trim_matches('"') == c.manifest.etag => Ok(()),
            (Precondition::EtagIs(e), Some(c)) => {
                failed(format!("ETag {e} does not match {}", c.manifest.etag))
            }
            (Precondition::EtagIsNot(e), Some(c)) if e.trim_matches('"') == c.manifest.etag => {
                failed(format!("ETag {e} matches the current version"))
            }
            (Precondition::EtagIsNot(_), _) => Ok(()),
            (Precondition::DeleteIf(_), None) => Ok(()),
            (Precondition::DeleteIf(condition), Some(c)) if condition.holds_for(c) => Ok(()),
            (Precondition::DeleteIf(_), Some(c)) => failed(format!(
                "version {} does not match the delete's conditions",
                c.version_id
            )),
        }
    }

    fn commit(
        &mut self,
        bucket: &str,
        key: &str,
        manifest: ObjectManifest,
        precondition: &Precondition,
        versioning: Versioning,
        lock: VersionLock,
    ) -> Result<Outcome, CatalogError> {
        let cat = catalogue_key(bucket, key);
        let current: Option<ObjectRecord> = self.shard.get(&keys::object(&cat))?;
        Self::check_precondition(current.as_ref(), precondition, (bucket, key))?;
        let sequence = self.next_sequence()?;
        let version_id = new_version_id(versioning, sequence);
        self.retire_current(&cat, current, versioning)?;
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
            delete_marker: false,
            retention: lock.retention,
            legal_hold: lock.legal_hold,
        };
        self.batch.put(keys::object(&cat), encode(&record));
        Ok(Outcome::Committed {
            version_id,
            sequence,
        })
    }

    /// Makes way for a new current version of `cat` (the caller then
    /// rewrites or deletes the `o` row): versioning keeps the current
    /// version as a noncurrent one, except that a new `null` version
    /// (suspended) replaces the old `null` one; unversioned, it is dropped.
    fn retire_current(
        &mut self,
        cat: &str,
        current: Option<ObjectRecord>,
        versioning: Versioning,
    ) -> Result<(), CatalogError> {
        if versioning == Versioning::Suspended {
            for old in self.shard.versions(cat)? {
                if old.version_id == NULL_VERSION {
                    self.ensure_removable(&old, false)?;
                    self.drop_version(cat, old)?;
                }
            }
        }
        let Some(current) = current else {
            return Ok(());
        };
        let replaced = match versioning {
            Versioning::Unversioned => true,
            Versioning::Suspended => current.version_id == NULL_VERSION,
            Versioning::Enabled => false,
        };
        if replaced {
            self.ensure_removable(&current, false)?;
            for blob in current.manifest.parts {
                self.discard_blob(blob)?;
            }
        } else {
            self.batch
                .put(keys::version(cat, current.sequence), encode(&current));
        }
        Ok(())
    }

    /// Removes a `v` row and frees its chunks (through the GC queue).
    fn drop_version(&mut self, cat: &str, version: ObjectRecord) -> Result<(), CatalogError> {
        self.batch.delete(keys::version(cat, version.sequence));
        for blob in version.manifest.parts {
            self.discard_blob(blob)?;
        }
        Ok(())
    }

    fn delete_object(
        &mut self,
        bucket: &str,
        key: &str,
        precondition: &Precondition,
        versioning: Versioning,
    ) -> Result<Outcome, CatalogError> {
        let cat = catalogue_key(bucket, key);
        let current: Option<ObjectRecord> = self.shard.get(&keys::object(&cat))?;
        Self::check_precondition(current.as_ref(), precondition, (bucket, key))?;
        // With no object, a conditional delete does nothing, unless the key's
        // current version is a delete marker and the condition names an
        // ETag, size or time: the marker has none, so it fails.
        if let Precondition::DeleteIf(condition) = precondition
            && current.is_none()
            && condition.names_a_value()
            && let Some(marker) = self.shard.versions(&cat)?.first()
            && marker.delete_marker
        {
            return Err(CatalogError::PreconditionFailed(format!(
                "the current version {} is a delete marker",
                marker.version_id
            )));
        }
        let conditional = matches!(precondition, Precondition::DeleteIf(_));
        if !versioning.keeps_versions() || (conditional && current.is_none()) {
            let Some(current) = current else {
                return Ok(Outcome::Deleted {
                    existed: false,
                    version_id: None,
                    delete_marker: false,
                });
            };
            self.ensure_removable(&current, false)?;
            for blob in current.manifest.parts {
                self.discard_blob(blob)?;
            }
            self.batch.delete(keys::object(&cat));
            return Ok(Outcome::Deleted {
                existed: true,
                version_id: None,
                delete_marker: false,
            });
        }
        // Versioned: the delete is a new version, a marker.
        let sequence = self.next_sequence()?;
        let version_id = new_version_id(versioning, sequence);
        if current.is_some() {
            self.batch.delete(keys::object(&cat));
        }
        self.retire_current(&cat, current, versioning)?;
        let marker = ObjectRecord {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: version_id.clone(),
            sequence,
            manifest: ObjectManifest {
                size: 0,
                etag: String::new(),
                content_type: None,
                headers: Default::default(),
                user_metadata: Default::default(),
                created_ms: self.now_ms,
                parts: Vec::new(),
                inline: None,
                tags: Default::default(),
                encryption: None,
                checksum: None,
                owner: None,
                acl: None,
            },
            delete_marker: true,
            retention: None,
            legal_hold: false,
        };
        self.batch
            .put(keys::version(&cat, sequence), encode(&marker));
        Ok(Outcome::Deleted {
            existed: true,
            version_id: Some(version_id),
            delete_marker: true,
        })
    }

    /// Removes one version for good. If it was the current one, the newest
    /// remaining version becomes current (the key reads as deleted if that
    /// is a delete marker).
    fn delete_version(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
        precondition: &Precondition,
        bypass_governance: bool,
    ) -> Result<Outcome, CatalogError> {
        let cat = catalogue_key(bucket, key);
        let current: Option<ObjectRecord> = self.shard.get(&keys::object(&cat))?;
        let versions = self.shard.versions(&cat)?;
        // A conditional delete of a version is checked against that version.
        let named = current
            .iter()
            .chain(versions.iter())
            .find(|v| v.version_id == version_id);
        Self::check_precondition(named, precondition, (bucket, key))?;
        if let Some(named) = named {
            self.ensure_removable(named, bypass_governance)?;
        }
        let removed_current = current.as_ref().is_some_and(|c| c.version_id == version_id);
        let (removed, rest) = if removed_current {
            let current = current.expect("checked above");
            self.batch.delete(keys::object(&cat));
            for blob in current.manifest.parts.clone() {
                self.discard_blob(blob)?;
            }
            (current, &versions[..])
        } else {
            let Some(at) = versions.iter().position(|v| v.version_id == version_id) else {
                return Ok(Outcome::Deleted {
                    existed: false,
                    version_id: Some(version_id.to_owned()),
                    delete_marker: false,
                });
            };
            self.drop_version(&cat, versions[at].clone())?;
            // Only a version newer than every other one (no `o` row, first
            // in `v`) was current.
            let was_current = current.is_none() && at == 0;
            (
                versions[at].clone(),
                if was_current { &versions[1..] } else { &[][..] },
            )
        };
        if let Some(next) = rest.first().filter(|n| !n.delete_marker) {
            self.batch.delete(keys::version(&cat, next.sequence));
            self.batch.put(keys::object(&cat), encode(next));
        }
        Ok(Outcome::Deleted {
            existed: true,
            version_id: Some(removed.version_id),
            delete_marker: removed.delete_marker,
        })
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
        (versioning, lock, checksum): (
            Versioning,
            VersionLock,
            Option<cairn_core::manifest::ObjectChecksum>,
        ),
        precondition: &Precondition,
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
        // Only a computed checksum is kept (the template's names only the
        // algorithm).
        manifest.checksum = checksum;
        // The parts' reverse-index entries are rewritten with the new owner.
        // A lock named at creation wins over the bucket default.
        let lock = upload.lock.unwrap_or(lock);
        let outcome = self.commit(bucket, key, manifest, precondition, versioning, lock)?;
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
        // The version holding the blob: usually the current one.
        let holds = |r: &ObjectRecord| r.manifest.parts.iter().any(|p| p.blob == blob);
        let (row, mut record) = match self.shard.get::<ObjectRecord>(&keys::object(&cat))? {
            Some(current) if holds(&current) => (keys::object(&cat), current),
            _ => self
                .shard
                .versions(&cat)?
                .into_iter()
                .find(holds)
                .map(|v| (keys::version(&cat, v.sequence), v))
                .ok_or_else(|| conflict(format!("blob {blob} is no longer part of {cat}")))?,
        };
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
        self.batch.put(row, encode(&record));
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

/// A new version's id: its sequence in a versioning-enabled bucket, `null`
/// otherwise (S3's rule).
fn new_version_id(versioning: Versioning, sequence: u64) -> String {
    match versioning {
        Versioning::Enabled => format!("{sequence:016x}"),
        Versioning::Unversioned | Versioning::Suspended => NULL_VERSION.to_owned(),
    }
}
