//! The S3 gateway. Not built yet (issue "Gateway").
