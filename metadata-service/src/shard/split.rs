//! The online split: moving the upper part of a shard's range into a new
//! shard while reads go on.

use std::path::Path;

use cairn_meta_api::shard_map::ShardId;
use rocksdb::{IteratorMode, WriteBatch};

use crate::keys::{self};

use super::{CatalogError, KeyRange, Shard, catalogue_key_of_row, sync_writes};

impl Shard {
    /// Moves every record at or above catalogue key `at` into a new shard
    /// opened at `path`, and shrinks this shard's range to end at `at`.
    /// Writes to this shard wait for the whole move; reads continue until
    /// the final switch. `install` is called with the new shard before this
    /// shard's range shrinks, so that requests rejected here as
    /// `WrongShard` find the new shard already serving.
    pub fn split_off(
        &self,
        at: &str,
        new_id: ShardId,
        path: &Path,
        install: impl FnOnce(Shard) -> Result<(), CatalogError>,
    ) -> Result<(), CatalogError> {
        let _write = self.write.lock().expect("write lock");
        let old = self.range();
        if !old.contains(at) || at == old.start {
            return Err(CatalogError::Conflict(format!(
                "{at:?} is not inside {}'s range",
                self.id
            )));
        }
        let upper = KeyRange {
            start: at.to_owned(),
            end: old.end.clone(),
        };
        // The new id is not in the map yet, so anything at `path` is debris
        // of an earlier, interrupted split.
        if path.exists() {
            std::fs::remove_dir_all(path)
                .map_err(|e| CatalogError::Corrupt(format!("{}: {e}", path.display())))?;
        }
        let target = Shard::open(new_id, path, upper.clone())?;
        let mut copy = WriteBatch::default();
        let mut remove = WriteBatch::default();
        for item in self.db.iterator(IteratorMode::Start) {
            let (k, v) = item?;
            if catalogue_key_of_row(&k, &v)?.is_some_and(|cat| upper.contains(&cat)) {
                copy.put(&k, &v);
                remove.delete(&k);
            }
        }
        copy.put(
            keys::meta("sequence"),
            self.counter("sequence")?.to_be_bytes(),
        );
        target.db.write_opt(copy, &sync_writes())?;
        install(target)?;
        let mut range = self.range.write().expect("range lock");
        range.end = Some(at.to_owned());
        self.db.write_opt(remove, &sync_writes())?;
        Ok(())
    }
}
