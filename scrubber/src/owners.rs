//! The object versions that own a node's chunks (the catalogue's reverse
//! index names them), each read once however many of its chunks the node
//! holds: node loss, drains and rebalances walk a node's chunks this way.

use std::collections::BTreeMap;

use cairn_core::manifest::BlobManifest;
use cairn_meta_api::client::MetaError;
use cairn_meta_api::model::{NodeChunk, ObjectRecord};

use cairn_core::ids::NodeId;

use crate::context::{Context, now_ms};
use crate::model::{RepairReason, RepairTask};

/// Bucket, key and version id (`None`: the current version).
pub(crate) type Version = (String, String, Option<String>);

#[derive(Debug, Default)]
pub(crate) struct Owners {
    records: BTreeMap<Version, Option<ObjectRecord>>,
}

impl Owners {
    /// The version and the committed blob `chunk` belongs to; `None` for a
    /// part of an unfinished multipart upload (it either completes, and a
    /// scrub finds it, or is aborted) and for a version or blob gone since.
    pub(crate) async fn part_of(
        &mut self,
        ctx: &Context,
        chunk: &NodeChunk,
    ) -> Result<Option<(&Version, &BlobManifest)>, MetaError> {
        if chunk.owner.upload_id.is_some() {
            return Ok(None);
        }
        let id = (
            chunk.owner.bucket.clone(),
            chunk.owner.key.clone(),
            chunk.owner.version_id.clone(),
        );
        if !self.records.contains_key(&id) {
            let record = match &id.2 {
                Some(version) => ctx.meta.get_version(&id.0, &id.1, Some(version)).await?,
                None => ctx.meta.get_object(&id.0, &id.1).await?,
            };
            self.records.insert(id.clone(), record);
        }
        let Some((id, Some(record))) = self.records.get_key_value(&id) else {
            return Ok(None);
        };
        Ok(record
            .manifest
            .parts
            .iter()
            .find(|p| p.blob == chunk.blob)
            .map(|part| (id, part)))
    }
}

/// A fresh repair task for `chunk` of version `id`, recorded on `node`.
pub(crate) fn task(
    id: &Version,
    chunk: &NodeChunk,
    node: &NodeId,
    reason: RepairReason,
    surviving: u8,
) -> RepairTask {
    RepairTask {
        bucket: id.0.clone(),
        key: id.1.clone(),
        version_id: id.2.clone(),
        blob: chunk.blob,
        index: chunk.index,
        node: node.clone(),
        reason,
        surviving,
        queued_ms: now_ms(),
        attempts: 0,
        not_before_ms: 0,
    }
}
