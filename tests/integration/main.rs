//! The integration tests, against real etcd processes (TLS; 1 and 3 members; tiny quotas that
//! force NOSPACE in seconds), the daemon's own binary, Debian's Prometheus and, as root, network
//! namespaces and the kernel's block-I/O throttle. One concern per module.
//!
//! Why one test binary, not one per file: each binary links the whole daemon and its
//! dependencies, and fifteen of them took a fifth of the test command's cold build. nextest still
//! runs every test as its own process (`.config/nextest.toml`); select a module by its path, e.g.
//! `cargo nextest run -E 'test(/^partitions::/)'`.

mod support;

mod actors;
mod apiserver;
mod clock;
mod degraded;
mod diagnosis;
mod events;
mod faults;
mod fields;
mod foundation;
mod http;
mod maintenance;
mod partitions;
mod prevention;
mod prometheus;
mod properties;
mod readme;
mod releases;
mod slow_disk;
mod supervision;
mod tls_messages;
