//! Decide: pure functions from an [`crate::observe::Observation`] (and the engine's memory) to
//! what should happen. No I/O here, so every rule is unit-tested without etcd.

pub mod defrag_rule;
