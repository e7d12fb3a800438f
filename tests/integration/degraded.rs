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

use crate::support;

use std::time::{Duration, Instant};

use support::{
    Cluster, Daemon, Pki, alarms, daemon_args, defrags_one_at_a_time, force_nospace, inspect,
    keys_present, runtime,
};

const MIB: u64 = 1024 * 1024;
const KEYS: usize = 5;

/// A sidecar beside member `i`, on the suite's short poll, told the quota (etcd < 3.6 does not
/// report it).
fn sidecar(cluster: &Cluster, i: usize, extra: &[&str]) -> Daemon {
    let quota = format!("{}", cluster.quota);
    let mut flags = vec!["--poll-interval", "1s", "--quota-backend-bytes", &quota];
    flags.extend_from_slice(extra);
    Daemon::start(
        &daemon_args(cluster, &cluster.endpoints()[i], &flags),
        cluster.dir.path(),
    )
}

/// The leader's index, asked of the members that are up.
fn leader_of(cluster: &Cluster, up: &[usize]) -> usize {
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
fn until_writable(cluster: &Cluster, endpoint: &str, limit: Duration, daemons: &[&Daemon]) -> f64 {
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
fn heals_within_a_minute(cluster: &Cluster, leader: usize, daemons: &[&Daemon], case: &str) {
    let endpoint = cluster.endpoints()[leader].clone();
    let took = until_writable(cluster, &endpoint, Duration::from_secs(60), daemons);
    eprintln!("healed {took:.1}s after the sidecars started ({case})");
}

/// Whether every member answers Status (a restarted one takes a moment).
fn every_member_answers(cluster: &Cluster) -> bool {
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
fn assert_whole(cluster: &Cluster, daemons: &[&Daemon]) {
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

#[test]
fn a_member_down_heals_through_the_quorum_and_is_defragmented_when_it_returns() {
    let mut cluster = Cluster::start(3, 32 * MIB);
    force_nospace(&cluster, &cluster.endpoints()[0], KEYS);
    let leader = leader_of(&cluster, &[0, 1, 2]);
    let lost = (0..3).find(|&i| i != leader).unwrap();
    // The node is lost, and the sidecar beside that member with it.
    cluster.kill(lost);
    let up: Vec<usize> = (0..3).filter(|&i| i != lost).collect();
    let daemons: Vec<Daemon> = up.iter().map(|&i| sidecar(&cluster, i, &[])).collect();
    let refs: Vec<&Daemon> = daemons.iter().collect();
    let endpoint = cluster.endpoints()[leader].clone();
    let took = until_writable(&cluster, &endpoint, Duration::from_secs(60), &refs);
    eprintln!("writes accepted {took:.1}s after the sidecars started, with m{lost} down");
    let log: String = daemons.iter().map(|d| d.log()).collect();
    let lost_name = &cluster.members[lost].name;
    assert!(
        log.contains("cannot be verified") && log.contains(lost_name.as_str()),
        "the lost member is named as not verified:\n{log}"
    );
    let statuses: Vec<serde_json::Value> = daemons.iter().map(|d| d.status_json()).collect();
    assert!(
        statuses.iter().any(
            |s| s["maintenance"]["unverified"].as_array().is_some_and(|a| a
                .iter()
                .any(|m| m.as_str().unwrap_or("").starts_with(lost_name.as_str())))
        ),
        "{statuses:?}"
    );

    // The member comes back with its old file (over the line) and the cluster is written to,
    // as the apiserver always does: within 90 s all three are whole again.
    cluster.restart(lost);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        until_writable(&cluster, &endpoint, Duration::from_secs(60), &refs);
        let whole = alarms(&cluster).is_empty() && every_member_answers(&cluster) && {
            let (members, writable) = inspect(&cluster);
            writable
                && members.windows(2).all(|w| w[0].2 == w[1].2)
                && members
                    .iter()
                    .all(|(_, size, _)| *size as f64 <= 0.9 * cluster.quota as f64)
        };
        if whole {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not whole 90 s after the member returned:\n{}",
            daemons
                .iter()
                .map(|d| d.log())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_whole(&cluster, &refs);
    assert!(
        daemons.iter().any(|d| d.log().contains("answers again")),
        "the returned member was checked"
    );
}

#[test]
fn sidecars_started_during_nospace_beside_the_followers_only_heal_it() {
    let cluster = Cluster::start(3, 32 * MIB);
    force_nospace(&cluster, &cluster.endpoints()[0], KEYS);
    let leader = leader_of(&cluster, &[0, 1, 2]);
    // The leader's pod is the one a StatefulSet's ordered rollout holds back.
    let daemons: Vec<Daemon> = (0..3)
        .filter(|&i| i != leader)
        .map(|i| sidecar(&cluster, i, &[]))
        .collect();
    let refs: Vec<&Daemon> = daemons.iter().collect();
    heals_within_a_minute(
        &cluster,
        leader,
        &refs,
        "the sidecars beside the followers only",
    );
    let log: String = daemons.iter().map(|d| d.log()).collect();
    assert_eq!(
        log.matches("no instance registered: moving leadership")
            .count(),
        1,
        "exactly one standby took over:\n{log}"
    );
    assert_whole(&cluster, &refs);
}

#[test]
fn a_blind_sidecar_beside_the_leader_is_taken_over_when_all_started_during_nospace() {
    let cluster = Cluster::start(3, 32 * MIB);
    force_nospace(&cluster, &cluster.endpoints()[0], KEYS);
    let leader = leader_of(&cluster, &[0, 1, 2]);
    // The leader's sidecar is alive but trusts another CA: it can observe nothing.
    let wrong = Pki::generate(&cluster.dir.path().join("wrong-ca"), "another-ca");
    let wrong_ca = wrong.ca.display().to_string();
    let daemons: Vec<Daemon> = (0..3)
        .map(|i| {
            if i == leader {
                let mut args = daemon_args(
                    &cluster,
                    &cluster.endpoints()[i],
                    &["--poll-interval", "1s"],
                );
                let at = args.iter().position(|a| a == "--cacert").unwrap();
                args[at + 1] = wrong_ca.clone();
                Daemon::start(&args, cluster.dir.path())
            } else {
                sidecar(&cluster, i, &[])
            }
        })
        .collect();
    let refs: Vec<&Daemon> = daemons.iter().collect();
    heals_within_a_minute(&cluster, leader, &refs, "the leader's sidecar blind");
    assert_eq!(daemons[leader].metric("etcd_upkeep_ready"), Some(0.0));
    assert_whole(&cluster, &refs);
}

/// What the registered sidecars publish in their candidate values, by member name.
fn published(cluster: &Cluster) -> Vec<(String, serde_json::Value)> {
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

/// The quotas the registered sidecars publish, by member name (etcd < 3.6 reports none).
fn published_quotas(cluster: &Cluster) -> Vec<(String, Option<u64>)> {
    published(cluster)
        .into_iter()
        .map(|(name, v)| (name, v["quota"].as_u64()))
        .collect()
}

#[test]
fn a_rolling_quota_raise_blocks_on_the_member_left_behind_and_heals_once_it_is_raised() {
    // 64 MiB everywhere, then m0 and m1 raised to 128 MiB; m2 came back with its old 64 MiB.
    let mut cluster = Cluster::start(3, 64 * MIB);
    cluster.restart_with_quota(0, 128 * MIB);
    cluster.restart_with_quota(1, 128 * MIB);
    cluster.wait_writable(Duration::from_secs(30));
    // One sidecar per member, each reading its own member's /metrics (etcd < 3.6 reports its
    // quota nowhere else); prevention off, so live data reaches NOSPACE.
    let daemons: Vec<Daemon> = (0..3)
        .map(|i| {
            let metrics = format!("{}/metrics", cluster.members[i].metrics_url);
            Daemon::start(
                &daemon_args(
                    &cluster,
                    &cluster.endpoints()[i],
                    &[
                        "--poll-interval",
                        "1s",
                        "--space-target",
                        "0",
                        "--etcd-metrics-url",
                        &metrics,
                    ],
                ),
                cluster.dir.path(),
            )
        })
        .collect();
    let refs: Vec<&Daemon> = daemons.iter().collect();
    daemons[0].wait_for(Duration::from_secs(30), "every quota published", |_| {
        published_quotas(&cluster)
            == vec![
                ("m0".to_string(), Some(128 * MIB)),
                ("m1".to_string(), Some(128 * MIB)),
                ("m2".to_string(), Some(64 * MIB)),
            ]
    });
    // Live data (distinct keys) until m2's 64 MiB quota refuses it.
    let live = runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        support::fill_until_nospace(&mut c, 100_000, 100_000, 100_000).await
    });
    let blocked = |d: &Daemon| {
        d.status_json()["maintenance"]["heal_blocked"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    daemons[0].wait_for(Duration::from_secs(60), "the heal blocked on m2", |_| {
        daemons.iter().any(|d| {
            let why = blocked(d);
            why.contains("m2's quota of 64.0 MiB (the other members have 128.0 MiB)")
                && why.contains("finish the quota raise on m2")
        })
    });
    std::thread::sleep(Duration::from_secs(5));
    let disarms: usize = daemons
        .iter()
        .map(|d| d.log().matches("disarmed NOSPACE").count())
        .sum();
    assert!(disarms <= 1, "at most one futile disarm, saw {disarms}");
    assert!(!alarms(&cluster).is_empty(), "NOSPACE stays armed");

    // The raise reaches m2: healed, the writes accepted again, nothing lost.
    cluster.restart_with_quota(2, 128 * MIB);
    let took = until_writable(
        &cluster,
        &cluster.endpoints()[0],
        Duration::from_secs(60),
        &refs,
    );
    eprintln!("healed {took:.1}s after m2 was raised ({live} live keys)");
    // "Healed" is said once a write was accepted and the alarm stayed away for a poll.
    daemons[0].wait_for(Duration::from_secs(10), "healed said", |_| {
        daemons.iter().any(|d| d.log().contains("NOSPACE healed"))
    });
    let (members, writable) = inspect(&cluster);
    assert!(writable);
    assert!(members.windows(2).all(|w| w[0].2 == w[1].2), "{members:?}");
    // Every acknowledged key is kept (etcd may also have applied the put it refused with
    // NOSPACE: it applies the one that crosses the quota).
    let kept = runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        let only_count = etcd_client::GetOptions::new()
            .with_prefix()
            .with_count_only();
        c.get("/registry/fill/", Some(only_count))
            .await
            .unwrap()
            .count() as usize
    });
    assert!(
        kept == live || kept == live + 1,
        "{kept} keys kept of {live} written"
    );
}

/// Free bytes of the filesystem holding `path`.
fn free_bytes(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

/// What the sidecar beside `member` (by name) published as its volume's free bytes.
fn published_free(cluster: &Cluster, member: &str) -> Option<u64> {
    published(cluster)
        .into_iter()
        .find(|(name, _)| name == member)
        .and_then(|(_, v)| v["disk_free"].as_u64())
}

#[test]
fn a_follower_whose_volume_lacks_room_is_never_defragmented_and_the_reason_is_named() {
    if !support::is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    // m2's data dir on a volume of its own (its WAL elsewhere, as a separate volume would be).
    let cluster = Cluster::start_with_volume(3, 64 * MIB, 2, 128 * MIB);
    if leader_of(&cluster, &[0, 1, 2]) == 2 {
        runtime().block_on(async {
            let mut c = cluster.client(&[cluster.endpoints()[2].clone()]).await;
            let list = c.member_list().await.unwrap();
            let m0 = list
                .members()
                .iter()
                .find(|m| m.name() == "m0")
                .unwrap()
                .id();
            c.move_leader(m0).await.unwrap();
        });
    }
    let daemons: Vec<Daemon> = (0..3)
        .map(|i| {
            let data_dir = cluster.members[i].data_dir.display().to_string();
            sidecar(
                &cluster,
                i,
                &["--space-target", "0", "--data-dir", &data_dir],
            )
        })
        .collect();
    let refs: Vec<&Daemon> = daemons.iter().collect();
    // 40 MiB of live data, then a ballast that leaves m2's volume 30 MiB: room for the db to
    // grow to the quota, not for the 48 MiB copy a defragmentation would write.
    runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        let value = vec![b'v'; 100_000];
        for i in 0..420 {
            c.put(format!("/registry/live/key-{i}"), value.clone(), None)
                .await
                .unwrap();
        }
    });
    let volume = cluster.members[2].data_dir.clone();
    let ballast = free_bytes(&volume).saturating_sub(30 * MIB);
    std::fs::write(volume.join("ballast"), vec![0u8; ballast as usize]).unwrap();
    daemons[0].wait_for(Duration::from_secs(30), "m2's free disk published", |_| {
        published_free(&cluster, "m2").is_some_and(|free| free < 36 * MIB)
    });
    force_nospace(&cluster, &cluster.endpoints()[0], KEYS);
    let named = |d: &Daemon| {
        let status = d.status_json();
        let text = format!(
            "{} {}",
            status["maintenance"]["blocked"], status["maintenance"]["heal_blocked"]
        );
        text.contains("m2's volume has") && text.contains("not defragmenting m2")
    };
    daemons[0].wait_for(Duration::from_secs(60), "the reason named", |_| {
        daemons.iter().any(named)
    });
    std::thread::sleep(Duration::from_secs(3));
    for d in &daemons {
        let status = d.status_json();
        if named(d) {
            eprintln!(
                "named: {} / {}",
                status["maintenance"]["blocked"], status["maintenance"]["heal_blocked"]
            );
        }
    }
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        support::defrag_intervals(&cluster.log(2)).is_empty(),
        "m2 was defragmented: {}",
        refs.iter()
            .map(|d| d.log())
            .collect::<Vec<_>>()
            .join("\n----\n")
    );
    assert!(every_member_answers(&cluster), "m2 stays up");
    assert!(
        !alarms(&cluster).is_empty(),
        "no disarm that its file would undo"
    );
    // Not retried in a loop: one refusal per change, not one per poll.
    let log: String = daemons.iter().map(|d| d.log()).collect();
    assert!(log.matches("m2's volume has").count() < 10, "{}", log);
}
