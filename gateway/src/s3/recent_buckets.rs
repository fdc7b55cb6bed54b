//! Bucket records read recently, so that a request does not cost a
//! catalogue read for its bucket: the access check (owner, parsed policy)
//! and what a read only reports (the `x-amz-expiration` header).
//!
//! Never used for what decides a write (versioning, object lock,
//! conditions): those read the bucket record fresh from the catalogue. A
//! record here is at most [`TTL`] old, or newer when this gateway changed
//! the bucket itself (it forgets the record).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_meta_api::model::BucketRecord;

use crate::policy::Policy;

/// How long a bucket record is reused.
pub(super) const TTL: Duration = Duration::from_secs(5);
/// Records kept at most; a full map is emptied (buckets are few, and an
/// eviction only costs a catalogue read).
const CAPACITY: usize = 10_000;

#[derive(Debug, Default)]
pub(super) struct RecentBuckets {
    records: Mutex<HashMap<String, (Instant, Arc<KnownBucket>)>>,
}

/// A bucket record and its policy, parsed once.
#[derive(Debug)]
pub(super) struct KnownBucket {
    pub(super) record: BucketRecord,
    /// `None` without a policy. A stored policy that no longer parses
    /// (it was validated when put) denies everything but its owner's
    /// policy calls, rather than be ignored.
    pub(super) policy: Option<Policy>,
}

impl RecentBuckets {
    /// The bucket's record if it was read less than [`TTL`] ago.
    pub(super) fn get(&self, bucket: &str) -> Option<Arc<KnownBucket>> {
        let records = self.records.lock().expect("recent buckets lock");
        records
            .get(bucket)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, record)| record.clone())
    }

    /// Remembers a record just read from the catalogue.
    pub(super) fn put(&self, record: &BucketRecord) -> Arc<KnownBucket> {
        let policy = record.policy.as_ref().map(|text| {
            Policy::parse(text, &record.name).unwrap_or_else(|err| {
                tracing::error!(bucket = %record.name, error = %err, "stored bucket policy does not parse; denying all");
                Policy::deny_all(&record.name)
            })
        });
        let known = Arc::new(KnownBucket {
            record: record.clone(),
            policy,
        });
        let mut records = self.records.lock().expect("recent buckets lock");
        if records.len() >= CAPACITY && !records.contains_key(&record.name) {
            records.clear();
        }
        records.insert(record.name.clone(), (Instant::now(), known.clone()));
        known
    }

    /// Forgets a bucket this gateway just changed or deleted.
    pub(super) fn forget(&self, bucket: &str) {
        self.records
            .lock()
            .expect("recent buckets lock")
            .remove(bucket);
    }
}

impl super::Cairn {
    /// Replaces one of a bucket's settings, and forgets this gateway's
    /// copy of its record so that the change applies here at once.
    pub(super) async fn set_bucket(
        &self,
        bucket: &str,
        setting: cairn_meta_api::model::BucketSetting,
    ) -> s3s::S3Result<()> {
        self.backend
            .meta
            .set_bucket_setting(bucket, setting)
            .await
            .map_err(super::errors::meta)?;
        self.recent_buckets.forget(bucket);
        Ok(())
    }

    /// A bucket's record for what a response only reports (an owner, an
    /// expiry): at most 5 s old; `None` if it is gone or cannot be read.
    pub(super) async fn known_bucket(&self, bucket: &str) -> Option<Arc<KnownBucket>> {
        if let Some(known) = self.recent_buckets.get(bucket) {
            return Some(known);
        }
        let record = self.backend.meta.head_bucket(bucket).await.ok()??;
        Some(self.recent_buckets.put(&record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> BucketRecord {
        BucketRecord {
            name: name.into(),
            owner: "owner".into(),
            created_ms: 0,
            versioning: Default::default(),
            object_lock: None,
            tags: Default::default(),
            lifecycle: None,
            encryption: None,
            policy: None,
            public_access_block: None,
            cors: None,
            ownership: Default::default(),
            acl: None,
            storage_class: None,
        }
    }

    #[test]
    fn a_record_is_reused_until_forgotten() {
        let recent = RecentBuckets::default();
        assert!(recent.get("a").is_none());
        recent.put(&record("a"));
        assert_eq!(recent.get("a").expect("present").record.name, "a");
        recent.forget("a");
        assert!(recent.get("a").is_none());
    }

    #[test]
    fn a_full_map_starts_over() {
        let recent = RecentBuckets::default();
        for i in 0..CAPACITY {
            recent.put(&record(&format!("b{i}")));
        }
        recent.put(&record("new"));
        assert!(recent.get("b0").is_none());
        assert!(recent.get("new").is_some());
    }
}
