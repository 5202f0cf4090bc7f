//! xbridge: an AF_XDP software bridge with Linux-bridge 802.1Q semantics.
//!
//! See `ARCHITECTURE.md` at the repository root for the code map.

pub mod bench;
pub mod config;
pub mod conformance;
pub mod conformance_host;
pub mod control;
pub mod dataplane;
pub mod events;
pub mod fdb;
pub mod metrics;
pub mod pipeline;
pub mod reconfig;
pub mod runtime;
pub mod stats;
pub mod sys;
pub mod topo;
pub mod topology;
pub mod trace;
pub mod vm;
pub mod wire;
