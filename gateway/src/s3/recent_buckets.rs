//! Bucket records read recently, for what a read only *reports* about its
//! bucket (the `x-amz-expiration` header of a GET or HEAD), so that a GET
//! does not cost a second catalogue read per request.
//!
//! Never used for what decides a write or what a request may do
//! (versioning, object lock, conditions): those read the bucket record
//! fresh from the catalogue. A record here is at most [`TTL`] old, or
//! newer when this gateway changed the bucket itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_meta_api::model::BucketRecord;

/// How long a bucket record is reused.
pub(super) const TTL: Duration = Duration::from_secs(5);
/// Records kept at most; a full map is emptied (buckets are few, and an
/// eviction only costs a catalogue read).
const CAPACITY: usize = 10_000;

#[derive(Debug, Default)]
pub(super) struct RecentBuckets {
    records: Mutex<HashMap<String, (Instant, Arc<BucketRecord>)>>,
}

impl RecentBuckets {
    /// The bucket's record if it was read less than [`TTL`] ago.
    pub(super) fn get(&self, bucket: &str) -> Option<Arc<BucketRecord>> {
        let records = self.records.lock().expect("recent buckets lock");
        records
            .get(bucket)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, record)| record.clone())
    }

    /// Remembers a record just read from the catalogue.
    pub(super) fn put(&self, record: &BucketRecord) -> Arc<BucketRecord> {
        let record = Arc::new(record.clone());
        let mut records = self.records.lock().expect("recent buckets lock");
        if records.len() >= CAPACITY && !records.contains_key(&record.name) {
            records.clear();
        }
        records.insert(record.name.clone(), (Instant::now(), record.clone()));
        record
    }

    /// Forgets a bucket this gateway just changed or deleted.
    pub(super) fn forget(&self, bucket: &str) {
        self.records
            .lock()
            .expect("recent buckets lock")
            .remove(bucket);
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
        }
    }

    #[test]
    fn a_record_is_reused_until_forgotten() {
        let recent = RecentBuckets::default();
        assert!(recent.get("a").is_none());
        recent.put(&record("a"));
        assert_eq!(recent.get("a").expect("present").name, "a");
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
