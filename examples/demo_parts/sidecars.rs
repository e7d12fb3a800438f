//! The demo's view of the sidecars and the cluster: starting one etcd-upkeep per member, which
//! one acts, what they logged and did (from their logs and `/status`), and the status table.
//!
//! Why apart: both parts of the demo watch the sidecars the same way; only what they look for
//! differs.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::{Cluster, Daemon, s, upkeep};
use crate::{MIB, runtime};

/// The quota every member and sidecar is given.
pub const QUOTA: u64 = 48 * MIB;

/// One etcd-upkeep per member, the local member first; `extra` flags on each. Returns once one
/// of them acts.
pub fn start(cluster: &Cluster, extra: &[&str]) -> Vec<Daemon> {
    let daemons: Vec<Daemon> = cluster
        .endpoints()
        .iter()
        .map(|endpoint| {
            let mut args = s(&[
                "--endpoints",
                endpoint,
                "--poll-interval",
                "1s",
                "--quota-backend-bytes",
                "48Mi",
            ]);
            args.extend(s(extra));
            args.extend(cluster.pki.flags());
            Daemon::start(&args, cluster.dir.path())
        })
        .collect();
    daemons[0].wait_for(Duration::from_secs(20), "an actor", |_| {
        acting(&daemons).is_some()
    });
    daemons
}

/// The sidecar that acts now.
pub fn acting(daemons: &[Daemon]) -> Option<usize> {
    daemons
        .iter()
        .position(|d| d.status_json()["maintenance"]["actor"] == true)
}

/// The first line of any sidecar's log containing `needle`, without colours.
pub fn log_line(daemons: &[Daemon], needle: &str) -> Option<String> {
    daemons
        .iter()
        .flat_map(|d| d.log().lines().map(strip_ansi).collect::<Vec<_>>())
        .find(|l| l.contains(needle))
}

/// Prints the actions of every sidecar's `/status` not shown yet that `wanted` keeps, with the
/// time since `since`; returns each one printed and whether it succeeded.
pub fn print_actions(
    daemons: &[Daemon],
    shown: &mut HashSet<String>,
    since: Instant,
    wanted: impl Fn(&str) -> bool,
) -> Vec<(String, bool)> {
    let mut printed = Vec::new();
    for d in daemons {
        let status = d.status_json();
        let Some(actions) = status["actions"].as_array() else {
            continue;
        };
        for a in actions.iter().rev() {
            let action = a["action"].as_str().unwrap_or("");
            let id = format!("{}{}{}", a["at"], action, a["member"]);
            if !wanted(action) || !shown.insert(id) {
                continue;
            }
            let member = a["member"]
                .as_str()
                .map(|m| format!(" {m}"))
                .unwrap_or_default();
            println!(
                "    t={:.1}s [{}] {action}{member}: {} ({:.2}s) — {}",
                since.elapsed().as_secs_f64(),
                d.address,
                a["result"].as_str().unwrap_or(""),
                a["duration_seconds"].as_f64().unwrap_or(0.0),
                a["detail"].as_str().unwrap_or("")
            );
            printed.push((action.to_string(), a["result"] == "ok"));
        }
    }
    printed
}

/// Largest member db size (bytes).
pub fn largest_db(cluster: &Cluster) -> u64 {
    runtime().block_on(async {
        let mut largest = 0;
        for endpoint in cluster.endpoints() {
            let mut c = cluster.client(std::slice::from_ref(&endpoint)).await;
            if let Ok(st) = c.status().await {
                largest = largest.max(st.db_size().max(0) as u64);
            }
        }
        largest
    })
}

/// `etcd-upkeep status` against the first member, printed as a user would see it.
pub fn status_table(cluster: &Cluster) {
    let mut args = s(&[
        "status",
        "--endpoints",
        &cluster.endpoints()[0],
        "--quota-backend-bytes",
        "48Mi",
    ]);
    args.extend(cluster.pki.flags());
    print!("{}", String::from_utf8_lossy(&upkeep(&args).stdout));
}

pub fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
