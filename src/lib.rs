//! etcd-upkeep: keeps etcd healthy by itself.
//!
//! Data flow, one module per stage:
//! **observe** (read the cluster into an [`observe::Observation`]) → **decide** (pure
//! functions in [`decide`], no I/O) → **act** (the only code that mutates etcd, [`act`]) →
//! **report** (metrics, status, logs, [`report`]). [`engine`] sequences the stages for
//! maintenance, [`diagnose`] finds what fills etcd, [`etcd`] holds all gRPC, and [`daemon`] /
//! [`oneshot`] are the commands. The binary (`main.rs`) only parses flags and maps exit codes.

pub mod act;
pub mod certs;
pub mod cli;
pub mod config;
pub mod connect;
pub mod daemon;
pub mod decide;
pub mod diagnose;
pub mod engine;
pub mod etcd;
pub mod observe;
pub mod oneshot;
pub mod report;
pub mod shutdown;
pub mod supervisor;
pub mod units;
