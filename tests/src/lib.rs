//! Cluster-level tests. The end-to-end S3 suite is in `tests/s3/` (pytest
//! with boto3 and aws-cli, run by `./dev test`): it starts real `cairn dev`
//! clusters — separate processes for the metadata service, every storage
//! node and the gateway — and kills nodes with SIGKILL.
