//! Harness for cluster-level tests (filled as services land).
