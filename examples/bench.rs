//! Benchmarks (figures, not pass/fail tests; these machines are noisy). Each prints its result
//! beside the target or baseline it is compared with. Run through `scripts/bench.sh [NAME...]`:
//!
//! - `idle`:     `run` against 3 members at the default poll — RSS (≤ 15 MiB) and CPU (≤ 1 %).
//! - `heal`:     NOSPACE → writable with the daemon vs the runbook scripted with etcdctl
//!   (target ≤ runbook + one poll interval).
//! - `churn`:    churn detector events/s (≥ 20 000/s) and memory (≤ 64 MiB), in-process and
//!   end-to-end behind a real etcd watch.
//! - `analyze`:  `analyze` over 1 000 000 keys — wall time and peak memory (bounded).
//! - `stall`:    a fragmented ~600 MB 3-member cluster defragmented by three instances while a
//!   client pinned to each member writes — the longest window with no write accepted anywhere
//!   (reference: uncoordinated 11.5–13.8 s; target < 1 s).
//! - `prevent`:  a ≥ 2 MB/s sync loop against 3 members with a 256 MiB quota and the seed's
//!   `--auto-compaction-*` flags, for `PREVENT_SECONDS` (default 600): etcd alone (baseline: its
//!   time to NOSPACE), then one etcd-upkeep per member on default flags — NOSPACE count, failed
//!   writes, peak db/quota and the history kept over time (target 0, 0, ≤ 80 %).
//! - `hashkv`:   HashKV of every member at once against one at a time, on a ~1.2 GiB fragmented
//!   3-member db under pinned writers — the longest window with no write accepted anywhere
//!   (the integrity check hashes in turn; at once, every member stops applying together).
//! - `bigdb` (on request only; ~10 GB of disk, tens of minutes): a ≥ 2 GiB fragmented 3-member db
//!   (6 GiB quota; `BIGDB_LIVE_MB` of live 512 KiB values, default 1600) defragmented by a sidecar
//!   beside each member, then re-fragmented and defragmented by `etcdctl defrag --cluster`, both
//!   under writers pinned to each member: time, longest stall anywhere and on each member, RSS.
//! - `analyze` also runs the baselines users reach for: `etcdctl get --prefix "" --keys-only` and
//!   `etcdctl get -w json | jq` summed by resource, on the same keys.

#[path = "bench_parts/apiserver.rs"]
mod apiserver_bench;
#[path = "bench_parts/common.rs"]
mod common;
#[path = "bench_parts/defrag.rs"]
mod defrag;
#[path = "bench_parts/diagnosis.rs"]
mod diagnosis;
#[path = "bench_parts/fragmented.rs"]
mod fragmented;
#[path = "bench_parts/maintenance.rs"]
mod maintenance;
#[path = "bench_parts/pinned.rs"]
mod pinned;
#[path = "bench_parts/prevent.rs"]
mod prevent;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use defrag::{bigdb, hashkv, lease, stall};
use diagnosis::{analyze, churn, churn_wide};
use maintenance::{heal, idle};
use prevent::prevent;

fn main() {
    let which: Vec<String> = std::env::args().skip(1).collect();
    let all = [
        "idle",
        "heal",
        "churn",
        "churn-wide",
        "analyze",
        "stall",
        "prevent",
        "hashkv",
    ]; // bigdb and lease (multi-GiB) and apiserver (20 minutes): on request only
    let chosen: Vec<&str> = if which.is_empty() {
        all.to_vec()
    } else {
        which.iter().map(String::as_str).collect()
    };
    for name in chosen {
        println!("== {name}");
        match name {
            "idle" => idle(),
            "heal" => heal(),
            "churn" => churn(),
            "analyze" => analyze(),
            "bigdb" => bigdb(),
            "churn-wide" => churn_wide(),
            "stall" => stall(),
            "prevent" => prevent(),
            "hashkv" => hashkv(),
            "lease" => lease(),
            "apiserver" => apiserver_bench::apiserver(),
            other => eprintln!("unknown benchmark {other}; choose from {all:?}"),
        }
    }
}
