//! Exactly one actor, against real etcd: identical instances (deployed etcd, HA vCluster) elect
//! one through lease-bound candidate keys; a killed actor is replaced during NOSPACE; and
//! sidecars beside the followers heal a cluster whose leader has no sidecar. Overlap is judged
//! from etcd's own "starting/finished defragment" log lines.
//!
//! `integrity`: what a new actor checks before it acts (the members' data agrees, and the
//! leader is never hashed while it leads).

mod integrity;

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::{
    Cluster, Daemon, alarms, daemon_args, defrags_one_at_a_time, force_nospace, inspect, runtime,
};

const MIB: u64 = 1024 * 1024;

/// Three instances with identical flags and endpoints, as the three pods of an HA vCluster.
fn identical_instances(cluster: &Cluster, extra: &[&str]) -> Vec<Daemon> {
    let endpoints = cluster.endpoints().join(",");
    let mut flags = vec!["--act-when", "elected", "--poll-interval", "1s"];
    flags.extend_from_slice(extra);
    (0..3)
        .map(|_| {
            Daemon::start(
                &daemon_args(cluster, &endpoints, &flags),
                cluster.dir.path(),
            )
        })
        .collect()
}

fn actors(daemons: &[Daemon]) -> usize {
    daemons
        .iter()
        .filter(|d| d.metric("etcd_upkeep_is_actor") == Some(1.0))
        .count()
}

fn wait_registered(daemons: &[Daemon]) {
    daemons[0].wait_for(Duration::from_secs(20), "every instance registered", |_| {
        daemons
            .iter()
            .all(|d| d.metric("etcd_upkeep_registered") == Some(1.0))
            && actors(daemons) == 1
    });
}

fn defrags_ok(daemons: &[Daemon]) -> f64 {
    daemons
        .iter()
        .map(|d| {
            d.get("/metrics")
                .1
                .lines()
                .filter(|l| l.starts_with("etcd_upkeep_defrag_total{") && l.contains("\"ok\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        })
        .sum()
}

/// A writer pinned to each member until `stop`.
fn pinned_writers(cluster: &Cluster, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let config = cluster.client_config();
    cluster
        .endpoints()
        .into_iter()
        .map(|endpoint| {
            let (stop, config) = (stop.clone(), config.clone());
            std::thread::spawn(move || {
                runtime().block_on(async move {
                    let mut c = config.only(std::slice::from_ref(&endpoint)).connect().await;
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let _ = c
                            .put(
                                format!("/registry/pinned/{}/{}", endpoint.len(), i % 50),
                                "x",
                                None,
                            )
                            .await;
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
        })
        .collect()
}

#[test]
fn identical_instances_elect_one_actor_and_defragment_each_member_once() {
    let cluster = Cluster::start(3, 256 * MIB);
    // Fragment every member: 30 MB written twice over the same keys, then compacted.
    runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        for _ in 0..2 {
            for k in 0..300 {
                c.put(
                    format!("/registry/secrets/ns/s-{k}"),
                    vec![b's'; 100_000],
                    None,
                )
                .await
                .unwrap();
            }
        }
        support::compact_to_current(&mut c).await;
    });
    let stop = Arc::new(AtomicBool::new(false));
    let writers = pinned_writers(&cluster, stop.clone());
    let daemons = identical_instances(
        &cluster,
        &[
            "--quota-backend-bytes",
            "256Mi",
            "--defrag-rule",
            "dbSizeFree > 10*1024*1024",
        ],
    );
    wait_registered(&daemons);
    let most = std::cell::Cell::new(0);
    daemons[0].wait_for(Duration::from_secs(60), "three defragmentations", |_| {
        most.set(most.get().max(actors(&daemons)));
        defrags_ok(&daemons) >= 3.0
    });
    let mut most_actors = most.get();
    // A few more polls: nobody defragments a member a second time.
    for _ in 0..10 {
        most_actors = most_actors.max(actors(&daemons));
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let logs: Vec<String> = daemons.iter().map(|d| d.log()).collect();
    assert_eq!(
        most_actors,
        1,
        "never two actors; logs:\n{}",
        logs.join("\n----\n")
    );
    assert_eq!(
        defrags_ok(&daemons),
        3.0,
        "each member once: {}",
        logs.join("\n----\n")
    );
    let intervals = defrags_one_at_a_time(&cluster);
    let mut members: Vec<usize> = intervals.iter().map(|i| i.2).collect();
    members.sort();
    assert_eq!(members, vec![0, 1, 2], "each member once: {intervals:?}");
    let acting: Vec<usize> = (0..3)
        .filter(|&i| defrags_ok(&daemons[i..=i]) > 0.0)
        .collect();
    assert_eq!(acting.len(), 1, "one instance did all of it: {acting:?}");
}

#[test]
fn a_heal_goes_on_when_its_actor_is_killed_as_the_first_defragmentation_starts() {
    let cluster = Cluster::start(3, 32 * MIB);
    let daemons = identical_instances(&cluster, &["--quota-backend-bytes", "32Mi"]);
    wait_registered(&daemons);
    let first = (0..3)
        .find(|&i| daemons[i].metric("etcd_upkeep_is_actor") == Some(1.0))
        .unwrap();
    force_nospace(&cluster, &cluster.endpoints()[0], 5);
    // The whole heal of this small db takes well under a second: the log is watched every 10 ms
    // (wait_for's 200 ms let it finish before the kill) and the actor killed at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !daemons[first].log().contains("defragmenting m") {
        assert!(
            std::time::Instant::now() < deadline,
            "no defragmentation: {}",
            daemons[first].log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    support::signal(daemons[first].child.id(), "KILL");
    let killed = daemons[first].log();
    assert!(
        !killed.contains("disarmed NOSPACE"),
        "the actor finished the heal before it was killed: {killed}"
    );
    // The lease expires (10 s), the next registered instance settles (2 polls) and finishes.
    daemons[(first + 1) % 3].wait_for(
        Duration::from_secs(60),
        "healed by another instance",
        |_| alarms(&cluster).is_empty(),
    );
    let others: Vec<&Daemon> = (0..3)
        .filter(|&i| i != first)
        .map(|i| &daemons[i])
        .collect();
    let disarms: f64 = others
        .iter()
        .filter_map(|d| d.metric("etcd_upkeep_alarm_disarm_total"))
        .sum();
    assert!(disarms >= 1.0, "a surviving instance disarmed");
    defrags_one_at_a_time(&cluster);
    let (members, writable) = inspect(&cluster);
    assert!(writable);
    assert!(members.windows(2).all(|w| w[0].2 == w[1].2), "{members:?}");
}

#[test]
fn sidecars_beside_the_followers_heal_when_the_leader_has_none() {
    let cluster = Cluster::start(3, 32 * MIB);
    let leader = cluster.leader_index();
    // Sidecars (default --act-when=leader) beside the two followers only: the leader's is
    // crash-looping, or not rolled out yet.
    let daemons: Vec<Daemon> = (0..3)
        .filter(|&i| i != leader)
        .map(|i| {
            Daemon::start(
                &daemon_args(
                    &cluster,
                    &cluster.endpoints()[i],
                    &["--poll-interval", "1s", "--quota-backend-bytes", "32Mi"],
                ),
                cluster.dir.path(),
            )
        })
        .collect();
    wait_registered(&daemons);
    let standby = daemons
        .iter()
        .find(|d| d.metric("etcd_upkeep_is_actor") == Some(0.0))
        .unwrap();
    assert!(
        standby.status_json()["maintenance"]["actor_reason"]
            .as_str()
            .unwrap()
            .contains("no live etcd-upkeep beside it"),
        "{}",
        standby.status_json()
    );
    force_nospace(&cluster, &cluster.endpoints()[leader], 5);
    daemons[0].wait_for(Duration::from_secs(60), "healed within a minute", |_| {
        alarms(&cluster).is_empty()
    });
    defrags_one_at_a_time(&cluster);
    let (members, writable) = inspect(&cluster);
    assert!(writable);
    assert!(members.windows(2).all(|w| w[0].2 == w[1].2), "{members:?}");
    for (name, size, _) in &members {
        assert!(*size as f64 <= 0.9 * (32 * MIB) as f64, "{name} at {size}");
    }
}

#[test]
fn a_candidacy_outlives_its_member_being_busy_for_less_than_the_lease_ttl() {
    // A sidecar renews its lease through its own member; that member stops answering for 7 s
    // (frozen, as a long HashKV or defragmentation makes it) — longer than a renewal's timeout,
    // shorter than the lease's 10 s TTL. The lease is still alive all along, so the candidacy
    // must carry on through another member, under the same lease.
    let cluster = Cluster::start(3, 64 * MIB);
    let leader = cluster.leader_index();
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let daemons = sidecars(&cluster);
    wait_registered(&daemons);
    let sidecar = &daemons[follower];
    let registered = |log: &str| log.matches("registered as an actor candidate").count();
    assert_eq!(registered(&sidecar.log()), 1, "{}", sidecar.log());
    cluster.freeze(follower);
    std::thread::sleep(Duration::from_secs(7));
    cluster.thaw(follower);
    sidecar.wait_for(Duration::from_secs(10), "renewed elsewhere", |d| {
        d.log().contains("actor candidacy renewed through")
    });
    std::thread::sleep(Duration::from_secs(4));
    let log = sidecar.log();
    assert!(!log.contains("actor candidacy lost"), "{log}");
    assert_eq!(
        registered(&log),
        1,
        "registered once, under one lease: {log}"
    );
    assert_eq!(sidecar.metric("etcd_upkeep_registered"), Some(1.0));
}

/// A sidecar beside each member, on a 1 s poll.
fn sidecars(cluster: &Cluster) -> Vec<Daemon> {
    (0..cluster.members.len())
        .map(|i| {
            Daemon::start(
                &daemon_args(cluster, &cluster.endpoints()[i], &["--poll-interval", "1s"]),
                cluster.dir.path(),
            )
        })
        .collect()
}
