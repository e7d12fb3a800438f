//! A rolling quota raise left behind on one member: the heal blocks on it, naming it, and
//! heals once it is raised.

use super::*;

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
    let daemons = sidecars_reading_their_members_metrics(&cluster);
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
    nothing_lost(&cluster, live);
}

/// One sidecar per member, each reading its own member's /metrics (etcd < 3.6 reports its quota
/// nowhere else); prevention off, so live data reaches NOSPACE.
fn sidecars_reading_their_members_metrics(cluster: &Cluster) -> Vec<Daemon> {
    (0..3)
        .map(|i| {
            let metrics = format!("{}/metrics", cluster.members[i].metrics_url);
            let flags = [
                "--poll-interval",
                "1s",
                "--space-target",
                "0",
                "--etcd-metrics-url",
                &metrics,
            ];
            let args = daemon_args(cluster, &cluster.endpoints()[i], &flags);
            Daemon::start(&args, cluster.dir.path())
        })
        .collect()
}

/// Writable, the members' hashes equal, and every acknowledged key kept (etcd may also have
/// applied the put it refused with NOSPACE: it applies the one that crosses the quota).
fn nothing_lost(cluster: &Cluster, live: usize) {
    let (members, writable) = inspect(cluster);
    assert!(writable);
    assert!(members.windows(2).all(|w| w[0].2 == w[1].2), "{members:?}");
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
