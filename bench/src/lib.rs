//! The pure half of `xbridge bench`: everything that turns measured counts
//! into figures people and scripts read, with no I/O, so it is unit-tested
//! exhaustively. The measuring half (topologies, generator, sink) lives in
//! the xbridge crate (`bridge/src/bench.rs`).

pub mod histogram;
pub mod plot;
pub mod report;
pub mod rfc2544;
pub mod stats;
