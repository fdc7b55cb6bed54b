//! Queries of one shard. Each holds the range lock for reading, so a split
//! cannot move rows away underneath it (see the module above).

use cairn_core::ids::{BlobId, NodeId};
use cairn_meta_api::model::{
    BucketRecord, GarbageEntry, ListEntry, ListPage, ListRequest, ListVersionsRequest, NodeChunk,
    ObjectRecord, ObjectSummary, PlacedChunk, UploadRecord, VersionEntry, VersionPage,
    VersionSummary,
};
use cairn_meta_api::shard_map::{ExpectedRange, prefix_successor};
use rocksdb::{Direction, IteratorMode};

use crate::keys::{self, bucket_anchor, catalogue_key};

use super::{CatalogError, KeyRange, Shard, decode};

impl Shard {
    pub fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, CatalogError> {
        let range = self.range.read().expect("range lock");
        self.check_owns(&range, &bucket_anchor(name))?;
        self.get(&keys::bucket(name))
    }

    /// Fails with `WrongShard` unless this shard owns exactly the range
    /// the caller expects. Whole-shard reads call it under the range lock
    /// they read with, so a split cannot slip between check and read.
    fn check_expected(
        &self,
        range: &KeyRange,
        expected: &ExpectedRange,
    ) -> Result<(), CatalogError> {
        if expected.matches(&range.start, range.end.as_deref()) {
            Ok(())
        } else {
            Err(CatalogError::WrongShard {
                shard: self.id,
                key: format!("[{:?}, {:?})", range.start, range.end),
            })
        }
    }

    /// The buckets whose records this shard holds.
    pub fn list_buckets(
        &self,
        expected: &ExpectedRange,
    ) -> Result<Vec<BucketRecord>, CatalogError> {
        let range = self.range.read().expect("range lock");
        self.check_expected(&range, expected)?;
        let scope = keys::namespaced(keys::BUCKET, &[]);
        self.scan(&scope, &scope, usize::MAX, |_, v| decode(v))
    }

    pub fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, CatalogError> {
        let range = self.range.read().expect("range lock");
        let cat = catalogue_key(bucket, key);
        self.check_owns(&range, &cat)?;
        self.get(&keys::object(&cat))
    }

    /// One version of an object: the current one (`version_id` `None`),
    /// which may be a delete marker, or the one with that id.
    pub fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectRecord>, CatalogError> {
        let range = self.range.read().expect("range lock");
        let cat = catalogue_key(bucket, key);
        self.check_owns(&range, &cat)?;
        let current: Option<ObjectRecord> = self.get(&keys::object(&cat))?;
        Ok(match version_id {
            None => match current {
                Some(current) => Some(current),
                None => self.versions(&cat)?.into_iter().next(),
            },
            Some(id) => match current {
                Some(current) if current.version_id == id => Some(current),
                _ => self
                    .versions(&cat)?
                    .into_iter()
                    .find(|v| v.version_id == id),
            },
        })
    }

    /// Every `v` row of one catalogue key (noncurrent versions and delete
    /// markers), newest first. Callers hold the range lock or the write lock.
    pub(super) fn versions(&self, cat: &str) -> Result<Vec<ObjectRecord>, CatalogError> {
        let scope = keys::versions_of(cat);
        self.scan(&scope, &scope, usize::MAX, |k, v| {
            if k.len() == scope.len() + 8 {
                decode(v).map(Some)
            } else {
                Ok(None)
            }
        })
        .map(|rows| rows.into_iter().flatten().collect())
    }

    /// Every version of one key, newest first: `o` (if any), then `v`.
    fn all_versions(&self, cat: &str) -> Result<Vec<ObjectRecord>, CatalogError> {
        let mut all: Vec<ObjectRecord> = self.get(&keys::object(cat))?.into_iter().collect();
        all.extend(self.versions(cat)?);
        Ok(all)
    }

    /// The smallest catalogue key `>= from` with any version (an `o` or a
    /// `v` row), if it starts with `scope`.
    fn next_versioned_key(&self, from: &str, scope: &str) -> Result<Option<String>, CatalogError> {
        // The first row at or after `seek` whose catalogue key is `>= from`.
        // Only one key's rows can sort at the seek point yet below `from`
        // (`from` = that key + NUL, a cursor just past it), so the skip is
        // bounded by that key's versions.
        let first = |seek: Vec<u8>, parse: fn(&[u8]) -> Option<&str>| {
            for item in self
                .db
                .iterator(IteratorMode::From(&seek, Direction::Forward))
            {
                let (k, _) = item?;
                match parse(&k) {
                    Some(cat) if cat < from => continue,
                    found => return Ok::<_, CatalogError>(found.map(str::to_owned)),
                }
            }
            Ok(None)
        };
        let object = first(keys::object(from), keys::catalogue_key_of_object)?;
        let version = first(keys::versions_of(from), keys::catalogue_key_of_version)?;
        let next = match (object, version) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(next.filter(|k| k.starts_with(scope)))
    }

    /// Lists versions of one bucket with S3 semantics (keys in order, each
    /// key's versions newest first), within this shard's range.
    pub fn list_versions(
        &self,
        request: &ListVersionsRequest,
    ) -> Result<VersionPage, CatalogError> {
        let range = self.range.read().expect("range lock");
        let prefix_cat = catalogue_key(&request.bucket, &request.prefix);
        let anchor_len = request.bucket.len() + 1;
        let mut cursor = request
            .cursor
            .as_str()
            .max(request.prefix.as_str())
            .to_owned();
        let mut after_version = request
            .after_version
            .as_deref()
            .filter(|_| request.cursor >= request.prefix);
        let mut entries = Vec::new();
        loop {
            if entries.len() >= request.limit {
                return Ok(VersionPage {
                    entries,
                    next_cursor: Some(cursor),
                });
            }
            let from = catalogue_key(&request.bucket, &cursor);
            if !range.contains(&from) {
                return Ok(VersionPage {
                    entries,
                    next_cursor: self.continuation(&range, &prefix_cat, anchor_len, Some(cursor)),
                });
            }
            let Some(found) = self
                .next_versioned_key(&from, &prefix_cat)?
                .filter(|k| range.contains(k))
            else {
                return Ok(VersionPage {
                    entries,
                    next_cursor: self.continuation(&range, &prefix_cat, anchor_len, None),
                });
            };
            let key = found[anchor_len..].to_owned();
            let grouped = common_prefix(&key, &request.prefix, request.delimiter.as_deref());
            if let Some(common) = grouped {
                let next = prefix_successor(&common);
                entries.push(VersionEntry::Prefix { prefix: common });
                after_version = None;
                match next {
                    Some(next) => cursor = next,
                    None => {
                        return Ok(VersionPage {
                            entries,
                            next_cursor: None,
                        });
                    }
                }
                continue;
            }
            let versions = self.all_versions(&found)?;
            let skip = match after_version.take() {
                Some(marker) if key == cursor => versions
                    .iter()
                    .position(|v| v.version_id == marker)
                    .map_or(0, |at| at + 1),
                _ => 0,
            };
            for (i, version) in versions.iter().enumerate().skip(skip) {
                if entries.len() >= request.limit {
                    // Mid-key: the caller asked for one more than it
                    // returns, so it never resumes from here.
                    return Ok(VersionPage {
                        entries,
                        next_cursor: Some(key),
                    });
                }
                entries.push(VersionEntry::Version(version_summary(version, i == 0)));
            }
            cursor = format!("{key}\0");
        }
    }

    /// Whether this shard holds any object or upload of `bucket`.
    pub fn bucket_has_content(
        &self,
        bucket: &str,
        expected: &ExpectedRange,
    ) -> Result<bool, CatalogError> {
        let range = self.range.read().expect("range lock");
        self.check_expected(&range, expected)?;
        self.has_content(bucket)
    }

    /// [`Shard::bucket_has_content`] for callers already holding the range lock.
    pub(super) fn has_content(&self, bucket: &str) -> Result<bool, CatalogError> {
        let anchor = bucket_anchor(bucket);
        for namespace in [keys::OBJECT, keys::VERSION, keys::UPLOAD] {
            let prefix = keys::namespaced(namespace, anchor.as_bytes());
            if let Some(Ok((key, _))) = self
                .db
                .iterator(IteratorMode::From(&prefix, Direction::Forward))
                .next()
                && key.starts_with(&prefix)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Lists objects of one bucket with S3 semantics, within this shard's
    /// range (see [`ListPage::next_cursor`] for how to continue).
    pub fn list(&self, request: &ListRequest) -> Result<ListPage, CatalogError> {
        let range = self.range.read().expect("range lock");
        let prefix_cat = catalogue_key(&request.bucket, &request.prefix);
        let mut cursor = request
            .cursor
            .as_str()
            .max(request.prefix.as_str())
            .to_owned();
        let mut entries = Vec::new();
        let anchor_len = request.bucket.len() + 1;
        let mut iter = self.db.raw_iterator();
        let seek_to = |iter: &mut rocksdb::DBRawIterator, cursor: &str| {
            iter.seek(keys::object(&catalogue_key(&request.bucket, cursor)));
        };
        seek_to(&mut iter, &cursor);
        loop {
            if entries.len() >= request.limit {
                return Ok(ListPage {
                    entries,
                    next_cursor: Some(cursor),
                });
            }
            let cat = catalogue_key(&request.bucket, &cursor);
            if !range.contains(&cat) {
                // The cursor left this shard: the caller continues elsewhere.
                return Ok(ListPage {
                    entries,
                    next_cursor: self.continuation(&range, &prefix_cat, anchor_len, Some(cursor)),
                });
            }
            let found = match (iter.valid(), iter.key()) {
                (true, Some(k)) => keys::catalogue_key_of_object(k).map(str::to_owned),
                _ => None,
            };
            let Some(found) = found.filter(|k| k.starts_with(&prefix_cat) && range.contains(k))
            else {
                iter.status()?;
                return Ok(ListPage {
                    entries,
                    next_cursor: self.continuation(&range, &prefix_cat, anchor_len, None),
                });
            };
            let key = &found[anchor_len..];
            let grouped = common_prefix(key, &request.prefix, request.delimiter.as_deref());
            match grouped {
                Some(common) => {
                    let next = prefix_successor(&common);
                    entries.push(ListEntry::Prefix { prefix: common });
                    match next {
                        Some(next) => {
                            cursor = next;
                            seek_to(&mut iter, &cursor);
                        }
                        None => {
                            return Ok(ListPage {
                                entries,
                                next_cursor: None,
                            });
                        }
                    }
                }
                None => {
                    let record: ObjectRecord = decode(iter.value().unwrap_or_default())?;
                    entries.push(ListEntry::Object(summary(&record)));
                    cursor = format!("{key}\0");
                    iter.next();
                }
            }
        }
    }

    /// Where a listing continues once this shard has nothing more for it:
    /// at the shard's end (or at `beyond`, where a common prefix made the
    /// cursor jump past the end), unless the next shard starts past every
    /// key the listing can match.
    fn continuation(
        &self,
        range: &KeyRange,
        prefix_cat: &str,
        anchor_len: usize,
        beyond: Option<String>,
    ) -> Option<String> {
        let end = range.end.as_deref()?;
        if prefix_successor(prefix_cat).is_some_and(|limit| end >= limit.as_str()) {
            return None;
        }
        // end lies inside the listing's scope, so it starts with `bucket/`.
        let from_end = end.get(anchor_len..)?.to_owned();
        Some(beyond.filter(|b| *b > from_end).unwrap_or(from_end))
    }

    pub fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, CatalogError> {
        let range = self.range.read().expect("range lock");
        let cat = catalogue_key(bucket, key);
        self.check_owns(&range, &cat)?;
        self.get(&keys::upload(&cat, upload_id))
    }

    /// In-progress uploads of a bucket under `prefix`, in (key, upload id)
    /// order, after `after` = (key, upload id).
    pub fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
        expected: &ExpectedRange,
    ) -> Result<Vec<UploadRecord>, CatalogError> {
        let range = self.range.read().expect("range lock");
        self.check_expected(&range, expected)?;
        let start = match after {
            Some((key, id)) => {
                let mut k = keys::upload(&catalogue_key(bucket, key), id);
                k.push(0);
                k
            }
            None => keys::namespaced(keys::UPLOAD, catalogue_key(bucket, prefix).as_bytes()),
        };
        let scope = keys::namespaced(keys::UPLOAD, catalogue_key(bucket, prefix).as_bytes());
        self.scan(&scope, &start, limit, |_, v| decode(v))
    }

    /// Reverse index: chunks this shard's catalogue places on `node`, after
    /// `after` (blob, index).
    pub fn chunks_on_node(
        &self,
        node: &NodeId,
        after: Option<(BlobId, u8)>,
        limit: usize,
        expected: &ExpectedRange,
    ) -> Result<Vec<NodeChunk>, CatalogError> {
        let range = self.range.read().expect("range lock");
        self.check_expected(&range, expected)?;
        let prefix = keys::node_prefix(node);
        let start = match after {
            Some((blob, index)) => {
                let mut k = keys::node_chunk(node, &blob, index);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        self.scan(&prefix, &start, limit, |k, v| {
            let rest = &k[prefix.len()..];
            let (Some(blob), Some(&index)) = (rest.get(..16), rest.get(16)) else {
                return Err(CatalogError::Corrupt("reverse index key".into()));
            };
            let blob: [u8; 16] = blob
                .try_into()
                .map_err(|_| CatalogError::Corrupt("blob id".into()))?;
            Ok(NodeChunk {
                node: node.clone(),
                blob: BlobId::from_bytes(blob),
                index,
                owner: decode(v)?,
            })
        })
    }

    /// For each chunk, whether this shard's reverse index places it on its
    /// node (a manifest or an upload references it). Garbage collection
    /// asks every shard right before it deletes.
    pub fn referenced(
        &self,
        chunks: &[PlacedChunk],
        expected: &ExpectedRange,
    ) -> Result<Vec<bool>, CatalogError> {
        let range = self.range.read().expect("range lock");
        self.check_expected(&range, expected)?;
        let keys: Vec<Vec<u8>> = chunks
            .iter()
            .map(|c| keys::node_chunk(&c.node, &c.chunk.blob, c.chunk.index))
            .collect();
        self.db
            .multi_get(&keys)
            .into_iter()
            .map(|found| Ok(found?.is_some()))
            .collect()
    }

    /// Queued garbage with id > `after`.
    pub fn garbage(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<GarbageEntry>, CatalogError> {
        self.scan(
            &keys::namespaced(keys::GARBAGE, &[]),
            &keys::garbage(after.map_or(0, |a| a + 1)),
            limit,
            |_, v| decode(v),
        )
    }

    /// Up to `limit` rows whose keys start with `scope`, from `start` on,
    /// each turned into a `T` by `f(key, value)`.
    fn scan<T>(
        &self,
        scope: &[u8],
        start: &[u8],
        limit: usize,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<T, CatalogError>,
    ) -> Result<Vec<T>, CatalogError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(start, Direction::Forward))
        {
            let (k, v) = item?;
            if !k.starts_with(scope) || out.len() >= limit {
                break;
            }
            out.push(f(&k, &v)?);
        }
        Ok(out)
    }
}

fn summary(record: &ObjectRecord) -> ObjectSummary {
    ObjectSummary {
        key: record.key.clone(),
        size: record.manifest.size,
        etag: record.manifest.etag.clone(),
        modified_ms: record.manifest.created_ms,
    }
}

fn version_summary(record: &ObjectRecord, is_latest: bool) -> VersionSummary {
    VersionSummary {
        key: record.key.clone(),
        version_id: record.version_id.clone(),
        sequence: record.sequence,
        is_latest,
        delete_marker: record.delete_marker,
        size: record.manifest.size,
        etag: record.manifest.etag.clone(),
        modified_ms: record.manifest.created_ms,
    }
}

/// The common prefix a listing rolls `key` into: up to and including the
/// first `delimiter` after `prefix`, if there is one.
fn common_prefix(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    key[prefix.len()..]
        .find(delimiter)
        .map(|at| key[..prefix.len() + at + delimiter.len()].to_owned())
}
