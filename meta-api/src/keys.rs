//! Catalogue keys: `bucket/key`. Bucket names contain no `/`, so a bucket
//! and every directory in it is one contiguous range of this key space, and
//! the shard map cuts this same space.

/// `bucket/key`, the key the shard map routes on.
pub fn catalogue_key(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}")
}

/// The smallest catalogue key of a bucket; its record lives in that shard.
pub fn bucket_anchor(bucket: &str) -> String {
    catalogue_key(bucket, "")
}
