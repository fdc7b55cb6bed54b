//! The metadata service: prefix-sharded catalogue and cluster membership. Not built yet (issue "Metadata service").
