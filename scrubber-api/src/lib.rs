//! The scrubber's admin API as the CLI (and tests) see it.
//!
//! - [`model`]: scrub jobs, their runs and findings, repair tasks and
//!   status (wire formats, also the scrubber store's records);
//! - [`client`]: [`ScrubberClient`], on the shared HTTP client helper;
//! - [`config`]: [`ScrubberConfig`], the scrubber's config file.

pub mod client;
pub mod config;
pub mod model;

pub use client::ScrubberClient;
pub use config::ScrubberConfig;
