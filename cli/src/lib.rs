//! The `cairn` command line. Its commands arrive with the gateway issue (`cairn dev`).
