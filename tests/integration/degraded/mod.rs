//! NOSPACE seldom comes alone: these tests heal it on a cluster that is already degraded, as a
//! new user meets it. Every instance here starts after the alarm (the first install, or pods
//! restarted while etcd refused writes), so none can register as an actor candidate:
//! - a follower is down, its sidecar gone with it: the quorum is healed, and the member, back
//!   with its old, large file, is defragmented before it can raise NOSPACE again;
//! - sidecars beside the followers only, and beside the leader one that cannot observe (a wrong
//!   CA): a standby moves leadership to its own member and heals.
//!
//! "Healed" is judged by a write through the API, overlap by etcd's own defragment log lines,
//! and nothing lost by equal KV hashes and every key still there.
//!
//! One file per case: `quorum` (a member down, sidecars started during NOSPACE), `quota` (a
//! rolling quota raise left behind), `volume` (a volume without room for the copy).

use crate::support;

use std::time::{Duration, Instant};

use support::{
    Cluster, Daemon, Pki, alarms, daemon_args, defrags_one_at_a_time, force_nospace, inspect,
    keys_present, runtime,
};

const MIB: u64 = 1024 * 1024;
const KEYS: usize = 5;

mod quorum;
mod quota;
mod volume;

/// A sidecar beside member `i`, on the suite's short poll, told the quota (etcd < 3.6 does not
/// report it).
pub(super) fn sidecar(cluster: &Cluster, i: usize, extra: &[&str]) -> Daemon {
    let quota = format!("{}", cluster.quota);
    let mut flags = vec!["--poll-interval", "1s", "--quota-backend-bytes", &quota];
    flags.extend_from_slice(extra);
    Daemon::start(
        &daemon_args(cluster, &cluster.endpoints()[i], &flags),
        cluster.dir.path(),
    )
}

/// The leader's index, asked of the members that are up.
pub(super) fn leader_of(cluster: &Cluster, up: &[usize]) -> usize {
    runtime().block_on(async {
        for &i in up {
            let mut c = cluster.client(&[cluster.endpoints()[i].clone()]).await;
            let (Ok(status), Ok(list)) = (c.status().await, c.member_list().await) else {
                continue;
            };
            let name = list
                .members()
                .iter()
                .find(|m| m.id() == status.leader())
                .map(|m| m.name().to_string());
            if let Some(i) = cluster
                .members
                .iter()
                .position(|m| Some(&m.name) == name.as_ref())
            {
                return i;
            }
        }
        panic!("no member that is up named a leader");
    })
}

/// Seconds until a small write through `endpoint` is accepted; panics after `limit`, showing
/// the daemons' logs.
pub(super) fn until_writable(
    cluster: &Cluster,
    endpoint: &str,
    limit: Duration,
    daemons: &[&Daemon],
) -> f64 {
    let start = Instant::now();
    let ok = runtime().block_on(async {
        let mut c = cluster
            .client_config()
            .only(&[endpoint.to_string()])
            .with_timeout(Duration::from_secs(2))
            .connect()
            .await;
        while start.elapsed() < limit {
            if c.put("upkeep-test/degraded", "ok", None).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        false
    });
    if !ok {
        let logs: Vec<String> = daemons.iter().map(|d| d.log()).collect();
        panic!(
            "no write accepted within {limit:?}; daemon logs:\n{}",
            logs.join("\n----\n")
        );
    }
    start.elapsed().as_secs_f64()
}

/// A write through the leader is accepted within a minute of the sidecars' start (printed).
pub(super) fn heals_within_a_minute(
    cluster: &Cluster,
    leader: usize,
    daemons: &[&Daemon],
    case: &str,
) {
    let endpoint = cluster.endpoints()[leader].clone();
    let took = until_writable(cluster, &endpoint, Duration::from_secs(60), daemons);
    eprintln!("healed {took:.1}s after the sidecars started ({case})");
}

/// Whether every member answers Status (a restarted one takes a moment).
pub(super) fn every_member_answers(cluster: &Cluster) -> bool {
    runtime().block_on(async {
        for endpoint in cluster.endpoints() {
            let mut c = cluster
                .client_config()
                .only(&[endpoint])
                .with_timeout(Duration::from_secs(2))
                .connect()
                .await;
            if c.status().await.is_err() {
                return false;
            }
        }
        true
    })
}

/// Healthy, no alarm, the same hash everywhere, every key kept, every file below the line.
pub(super) fn assert_whole(cluster: &Cluster, daemons: &[&Daemon]) {
    defrags_one_at_a_time(cluster);
    let (members, writable) = inspect(cluster);
    let logs = || {
        daemons
            .iter()
            .map(|d| d.log())
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    assert!(writable, "{}", logs());
    assert!(alarms(cluster).is_empty(), "{}", logs());
    assert!(members.windows(2).all(|w| w[0].2 == w[1].2), "{members:?}");
    assert_eq!(keys_present(cluster, KEYS), KEYS);
    for (name, size, _) in &members {
        assert!(
            *size as f64 <= 0.9 * cluster.quota as f64,
            "{name} at {size}: {}",
            logs()
        );
    }
}

/// What the registered sidecars publish in their candidate values, by member name.
pub(super) fn published(cluster: &Cluster) -> Vec<(String, serde_json::Value)> {
    runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        let (Ok(listed), Ok(ids)) = (
            c.get(
                "/etcd-upkeep/candidates/",
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await,
            c.member_list().await,
        ) else {
            return Vec::new();
        };
        let mut out: Vec<(String, serde_json::Value)> = listed
            .kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice::<serde_json::Value>(kv.value()).ok())
            .filter_map(|v| {
                let id = u64::from_str_radix(v["member"].as_str()?, 16).ok()?;
                let member = ids.members().iter().find(|m| m.id() == id)?;
                Some((member.name().to_string(), v))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    })
}
