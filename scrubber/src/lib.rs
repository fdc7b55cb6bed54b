//! The scrubber and repair worker. Not built yet (issue "Scrubber and repair").
