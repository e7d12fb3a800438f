//! A member down, and sidecars started during NOSPACE beside the followers only or beside a
//! leader they cannot observe from: the quorum is healed.

use super::*;

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
