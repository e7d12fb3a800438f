//! etcd-upkeep: keeps etcd healthy by itself.
//!
//! Data flow, one module per stage:
//! **observe** (read the cluster into an [`observe::Observation`]) → **decide** (pure
//! functions in [`decide`], no I/O) → **act** (the only code that mutates etcd, [`act`]) →
//! **report** (metrics, status, logs, [`report`]). [`engine`] sequences the stages for
//! maintenance, [`diagnose`] finds what fills etcd, [`etcd`] holds all gRPC, and [`daemon`] /
//! [`oneshot`] are the commands. The binary (`main.rs`) only parses flags and maps exit codes.
//!
//! Without the `daemon` feature (on by default) the library is only the parsers of user and
//! untrusted input, each in its own module: what the fuzz targets build (`fuzz/`), without
//! etcd-client, tonic, axum, hyper or clap.

#[cfg(feature = "daemon")]
pub mod act;
#[cfg(feature = "daemon")]
pub mod certs;
#[cfg(feature = "daemon")]
pub mod cli;
#[cfg(feature = "daemon")]
pub mod clock;
#[cfg(feature = "daemon")]
pub mod config;
#[cfg(feature = "daemon")]
pub mod connect;
#[cfg(feature = "daemon")]
pub mod daemon;
#[cfg(feature = "daemon")]
pub mod decide;
#[cfg(feature = "daemon")]
pub mod diagnose;
#[cfg(feature = "daemon")]
pub mod engine;
#[cfg(feature = "daemon")]
pub mod etcd;
#[cfg(feature = "daemon")]
pub mod kube;
#[cfg(feature = "daemon")]
pub mod observe;
#[cfg(feature = "daemon")]
pub mod oneshot;
#[cfg(feature = "daemon")]
pub mod report;
#[cfg(feature = "daemon")]
pub mod shutdown;
#[cfg(feature = "daemon")]
pub mod supervisor;
pub mod tls;
pub mod units;

// The parsers alone, from the same files (inline modules here resolve to `src/<module>/…`), for
// the fuzz build: `cargo build --no-default-features`.
#[cfg(not(feature = "daemon"))]
pub mod config {
    mod cron;
    mod error;
    pub use cron::cron_with_seconds;
    pub use error::ConfigError;
}
#[cfg(not(feature = "daemon"))]
pub mod decide {
    pub mod defrag_rule;
}
#[cfg(not(feature = "daemon"))]
pub mod diagnose {
    pub mod fields;
    pub mod keys;
}
#[cfg(not(feature = "daemon"))]
pub mod observe {
    pub mod quota;
}
#[cfg(not(feature = "daemon"))]
pub mod report {
    pub mod web;
}
