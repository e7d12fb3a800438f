//! The demo behind the README's first command: a 3-member TLS etcd with a small quota and one
//! etcd-upkeep per member (as the sidecars of an HA vCluster), then a simulated CRD sync loop:
//!
//! 1. with prevention on (the default): the loop is named and etcd is held below its quota —
//!    no NOSPACE, no write refused for space (a write in flight while the sidecars move
//!    leadership before defragmenting the leader may be dropped by raft: it is printed, with
//!    etcd's words, and counted against those moves) — `demo_parts/prevention.rs`;
//! 2. with prevention off (`--space-target 0`): the loop fills etcd until NOSPACE, and
//!    etcd-upkeep heals the cluster by itself — `demo_parts/cure.rs`.
//!
//! Exits 0 only if both really happened (held below the quota; then alarm gone, writes accepted,
//! every key intact).

#[path = "demo_parts/cure.rs"]
mod cure;
#[path = "demo_parts/prevention.rs"]
mod prevention;
#[path = "demo_parts/sidecars.rs"]
mod sidecars;
#[path = "../tests/integration/support/mod.rs"]
mod support;
#[path = "demo_parts/sync_loop.rs"]
mod sync_loop;

use std::time::Instant;

use support::Cluster;

const MIB: u64 = 1024 * 1024;

/// A part of the demo's narration, in bold.
fn say(text: &str) {
    println!("\n\x1b[1m==> {text}\x1b[0m");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    let started = Instant::now();
    say("Starting a 3-member etcd cluster with client and peer TLS and a 48 MiB quota");
    let cluster = Cluster::start(3, sidecars::QUOTA);
    println!(
        "etcd {} — {}",
        support::etcd_bin().display(),
        cluster.endpoints().join(", ")
    );
    let prevented = prevention::run(&cluster, 25);
    let cured = cure::run(&cluster);
    println!("\ndemo finished in {:.0}s", started.elapsed().as_secs_f64());
    drop(cluster);
    if !(prevented && cured.healed && cured.writable && cured.named) {
        eprintln!(
            "demo FAILED: held below the quota={prevented} healed={} writable={} loop named={}",
            cured.healed, cured.writable, cured.named
        );
        std::process::exit(1);
    }
}
