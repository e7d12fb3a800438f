//! The one-shot `heal`, the dry runs, and the daemon's heal taking the same steps; bad flags.

use super::*;

#[test]
fn one_shot_heal_and_its_dry_run() {
    let (cluster, base) = heal_in_nospace();
    let mut dry = base.clone();
    dry.push("--dry-run".into());
    let out = upkeep(&dry);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for step in [
        "would compact",
        "would defragment",
        "would move leadership",
        "would disarm NOSPACE",
    ] {
        assert!(
            stderr.contains(step),
            "dry run must print '{step}':\n{stderr}"
        );
    }
    assert!(!alarms(&cluster).is_empty(), "dry run changes nothing");
    for i in 0..3 {
        assert!(
            defrag_intervals(&cluster.log(i)).is_empty(),
            "dry run defragmented"
        );
    }

    let out = upkeep(&base);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("healed"), "{stdout}");
    assert!(alarms(&cluster).is_empty());
    let (members, writable) = inspect(&cluster);
    assert!(writable);
    assert!(members.windows(2).all(|w| w[0].2 == w[1].2), "{members:?}");

    // Healthy cluster: heal has nothing to do and says so.
    let out = upkeep(&base);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to heal"));
}

#[test]
fn run_dry_run_prints_the_heal_once_and_changes_nothing() {
    let cluster = Cluster::start(1, 16 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let daemon = Daemon::start(
        &daemon_args(&cluster, &endpoint, &["--dry-run"]),
        cluster.dir.path(),
    );
    force_nospace(&cluster, &endpoint, 5);
    daemon.wait_for(Duration::from_secs(20), "the dry-run plan", |d| {
        d.log().contains("would disarm NOSPACE")
    });
    std::thread::sleep(Duration::from_secs(3)); // several more polls
    let log = daemon.log();
    assert_eq!(log.matches("[dry-run] would compact").count(), 1, "{log}");
    assert!(log.contains("[dry-run] would defragment m0"), "{log}");
    assert!(!alarms(&cluster).is_empty(), "dry run changes nothing");
    assert!(defrag_intervals(&cluster.log(0)).is_empty());
    assert_eq!(daemon.status_json()["maintenance"]["dry_run"], true);
}

#[test]
fn the_heal_dry_run_plans_exactly_what_the_real_heal_does() {
    let (cluster, mut base) = heal_in_nospace(); // held: dropping it stops etcd
    // The two runs must find the same cluster: followers still applying the last entries
    // change their sizes, and with them the order of equal-sized followers.
    wait_until_settled(&cluster);
    base.extend(s(&["--log-format", "json"]));
    let mut dry = base.clone();
    dry.push("--dry-run".into());
    let planned = upkeep(&dry);
    let planned = heal_steps(&String::from_utf8_lossy(&planned.stderr), true);
    let real = upkeep(&base);
    let stderr = String::from_utf8_lossy(&real.stderr);
    assert!(real.status.success(), "{stderr}");
    let performed = heal_steps(&stderr, false);
    assert!(
        performed
            .iter()
            .filter(|s| s.starts_with("defragment"))
            .count()
            == 3
            && performed.iter().any(|s| s.starts_with("move-leader"))
            && performed.iter().any(|s| s.starts_with("disarm")),
        "the real heal: {performed:?}\n{stderr}"
    );
    assert_eq!(
        planned, performed,
        "the dry run shows what the real heal does"
    );
}

/// One heal, however it is started: the daemon heals NOSPACE through the same step as the
/// one-shot `heal` (`Engine::heal_step`, the same checks before it), so on the same kind of
/// cluster both take the same steps in the same order.
#[test]
fn the_daemon_heals_with_the_same_steps_as_the_one_shot_heal() {
    // One disarm per member that raised the alarm: how many did is up to etcd, so a run of
    // disarms counts as one step.
    let kinds = |steps: &[String]| -> Vec<String> {
        let mut kinds: Vec<String> = steps
            .iter()
            .map(|s| s.split(' ').next().unwrap_or("").to_string())
            .collect();
        kinds.dedup_by(|a, b| a == "disarm" && b == "disarm");
        kinds
    };
    let (cluster, mut base) = heal_in_nospace();
    wait_until_settled(&cluster);
    base.extend(s(&["--log-format", "json"]));
    let oneshot = upkeep(&base);
    let stderr = String::from_utf8_lossy(&oneshot.stderr);
    assert!(oneshot.status.success(), "{stderr}");
    let by_hand = kinds(&heal_steps(&stderr, false));
    drop(cluster);

    let (cluster, _) = heal_in_nospace();
    wait_until_settled(&cluster);
    let endpoint = cluster.endpoints()[0].clone();
    let daemon = Daemon::start(
        &daemon_args(
            &cluster,
            &endpoint,
            &[
                "--act-when",
                "always",
                "--space-target",
                "0",
                "--log-format",
                "json",
            ],
        ),
        cluster.dir.path(),
    );
    daemon.wait_for(Duration::from_secs(60), "the daemon's disarm", |d| {
        d.log().contains("disarmed NOSPACE")
    });
    let by_daemon = kinds(&heal_steps(&daemon.log(), false));
    assert_eq!(
        by_hand, by_daemon,
        "the one-shot heal and the daemon take the same steps"
    );
    assert!(by_hand.contains(&"move-leader".to_string()), "{by_hand:?}");
}

#[test]
fn bad_maintenance_flags_exit_2_naming_the_flag() {
    let cases: [(&[&str], &str); 7] = [
        (&["--defrag-rule", "dbSize >"], "--defrag-rule"),
        (
            &["--min-defrag-interval", "30d"],
            "--min-defrag-interval 30days: must be at most 7days",
        ),
        (
            &["--forecast-horizon", "8d"],
            "--forecast-horizon 8days: must be at most 7days",
        ),
        (
            &["--history-floor", "2h"],
            "--history-floor 2h: must not exceed --compaction-retention 30m",
        ),
        (&["--defrag-rule", "dbQuota * 2"], "boolean"),
        (&["--defrag-schedule", "* * *"], "--defrag-schedule"),
        (
            &[
                "--compaction-mode",
                "revision",
                "--compaction-retention",
                "30m",
            ],
            "--compaction-retention",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = s(&[
            "run",
            "--endpoints",
            "http://127.0.0.1:1",
            "--listen-address",
            "127.0.0.1:0",
        ]);
        args.extend(s(flags));
        let out = upkeep(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(expected), "{flags:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
