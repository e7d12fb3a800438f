//! The maintenance engine against real etcd: NOSPACE healed on 1 and 3 members with a verified
//! disarm, live data over quota left armed and healed after deletions, three instances never
//! defragmenting two members at once (from etcd's own logs), faults during a heal, the one-shot
//! `heal`, compaction and rule-driven defragmentation.

//!
//! One file per concern: `heal` (the daemon's heal), `instances` (several instances, faults
//! mid-heal), `one_shot` (`heal`, the dry runs), `schedule` (compaction, rule-driven
//! defragmentation). Shared here: the daemon's flags and the heal helpers.

mod heal;
mod instances;
mod one_shot;
mod schedule;

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use support::{
    Cluster, Daemon, alarms, defrag_intervals, force_nospace, inspect, keys_present, log_events,
    runtime, s, upkeep,
};

const MIB: u64 = 1024 * 1024;

pub(super) fn daemon_args(cluster: &Cluster, endpoint: &str, extra: &[&str]) -> Vec<String> {
    let quota = cluster.quota.to_string();
    let mut flags = vec![
        "--poll-interval",
        "500ms",
        "--dial-timeout",
        "2s",
        "--quota-backend-bytes",
        &quota,
        "--log-level",
        "info",
    ];
    flags.extend_from_slice(extra);
    support::daemon_args(cluster, endpoint, &flags)
}

/// Once `daemon` acts: NOSPACE forced through `endpoint` (over `keys` keys), then its disarm.
pub(super) fn fill_and_wait_for_the_disarm(
    cluster: &Cluster,
    daemon: &Daemon,
    endpoint: &str,
    keys: usize,
) {
    daemon.wait_for(Duration::from_secs(15), "actor", |d| {
        d.status_json()["maintenance"]["actor"] == true
    });
    force_nospace(cluster, endpoint, keys);
    daemon.wait_for(Duration::from_secs(30), "heal", |d| {
        d.metric("etcd_upkeep_alarm_disarm_total").unwrap_or(0.0) >= 1.0
    });
}

pub(super) fn member_ids(cluster: &Cluster) -> Vec<String> {
    runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        let list = c.member_list().await.unwrap();
        let by_name: HashMap<String, u64> = list
            .members()
            .iter()
            .map(|m| (m.name().to_string(), m.id()))
            .collect();
        cluster
            .members
            .iter()
            .map(|m| format!("{:x}", by_name[&m.name]))
            .collect()
    })
}

/// A 3-member cluster in NOSPACE (32 MiB quota) and the `heal` command line for it.
pub(super) fn heal_in_nospace() -> (Cluster, Vec<String>) {
    let cluster = Cluster::start(3, 32 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    force_nospace(&cluster, &endpoint, 5);
    let mut base = s(&[
        "heal",
        "--endpoints",
        &endpoint,
        "--quota-backend-bytes",
        "32Mi",
    ]);
    base.extend(cluster.pki.flags());
    (cluster, base)
}

/// The mutations a one-shot `heal` logged (JSON), in order: `compact`, `defragment <member>`,
/// `move-leader <from> <to>`, `disarm <member>` — from the "[dry-run] would …" lines or from
/// the lines of the real steps.
pub(super) fn heal_steps(stderr: &str, dry_run: bool) -> Vec<String> {
    let mut steps = Vec::new();
    for line in stderr.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(action), Some(message)) = (v["action"].as_str(), v["message"].as_str()) else {
            continue;
        };
        let real_step = [
            "compacted to",
            "defragmenting ",
            "moved leadership",
            "disarmed NOSPACE",
        ]
        .iter()
        .any(|p| message.starts_with(p));
        if message.starts_with("[dry-run] would") != dry_run || (!dry_run && !real_step) {
            continue;
        }
        let field = |k: &str| v[k].as_str().unwrap_or("").to_string();
        steps.push(match action {
            "move-leader" => format!("move-leader {} {}", field("from"), field("to")),
            "compact" => "compact".to_string(),
            other => format!("{other} {}", field("member")),
        });
    }
    steps
}

/// Until every member's db size and applied index read the same twice, 500 ms apart (≤ 20 s).
pub(super) fn wait_until_settled(cluster: &Cluster) {
    let read = || {
        support::runtime().block_on(async {
            let mut each = Vec::new();
            for e in cluster.endpoints() {
                let mut c = cluster.client(&[e]).await;
                each.push(c.status().await.map(|s| (s.db_size(), s.raft_index())).ok());
            }
            each
        })
    };
    let mut last = read();
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(500));
        let now = read();
        if now == last {
            return;
        }
        last = now;
    }
}
