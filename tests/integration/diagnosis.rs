//! Diagnosis against real etcd: exact keyspace breakdown, a simulated sync loop ranked first by
//! `analyze --watch` and named by the daemon (through a compaction), the growth forecast
//! published, and the space controller blaming the loop for the history it cuts.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::{Cluster, Daemon, daemon_args, runtime, s, upkeep};

const MIB: u64 = 1024 * 1024;
const LOOP_KEY: &str = "/registry/example.com/widgets/default/looping-widget";

/// Writes `LOOP_KEY` `per_second` times a second (value `size` bytes) amid background writes to
/// 200 other keys, until `stop`.
fn start_sync_loop(
    cluster: &Cluster,
    per_second: u64,
    size: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let config = cluster.client_config();
    std::thread::spawn(move || {
        runtime().block_on(async {
            let mut c = config.connect().await;
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
            let mut writes = 0u64;
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                if c.put(LOOP_KEY, vec![b'w'; size], None).await.is_ok() {
                    writes += 1;
                }
                // Background: every other tick, one of 200 keys.
                if i.is_multiple_of(2) {
                    let _ = c
                        .put(
                            format!("/registry/configmaps/ns-{}/cm-{}", i % 7, (i / 2) % 200),
                            "data",
                            None,
                        )
                        .await;
                }
                i += 1;
            }
            writes
        })
    })
}

#[test]
fn analyze_counts_and_bytes_are_exact_on_a_seeded_keyspace() {
    let cluster = Cluster::start(1, 64 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let mut seed = seeded_keys();
    runtime().block_on(async {
        let mut c = cluster.client(std::slice::from_ref(&endpoint)).await;
        for (key, size) in &seed {
            c.put(key.as_str(), vec![b'v'; *size], None).await.unwrap();
        }
    });
    seed.push(("upkeep-test/ready".into(), 1)); // written by the harness
    let expected = expected_resources(&seed);

    let mut args = s(&[
        "analyze",
        "--endpoints",
        &endpoint,
        "--output",
        "json",
        "--page-size",
        "7",
    ]);
    args.extend(cluster.pki.flags());
    let out = upkeep(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let resources = json["resources"].as_array().unwrap();
    let got: Vec<(String, u64, u64)> = resources
        .iter()
        .map(|r| {
            (
                r["resource"].as_str().unwrap().to_string(),
                r["count"].as_u64().unwrap(),
                r["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(json["total_keys"].as_u64().unwrap(), seed.len() as u64);
    let widgets = resources
        .iter()
        .find(|r| r["resource"] == "example.com/widgets")
        .unwrap();
    let largest = &widgets["largest"][0];
    assert_eq!(
        largest["bytes"].as_u64().unwrap(),
        largest["key"].as_str().unwrap().len() as u64 + 3000
    );

    let mut args = s(&["analyze", "--endpoints", &endpoint]);
    args.extend(cluster.pki.flags());
    let out = upkeep(&args);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("RESOURCE")
            && table.contains("example.com/widgets")
            && table.contains("LARGEST OBJECTS"),
        "{table}"
    );
}

/// (key, value size) of a small keyspace: Kubernetes resources (nodes stored as minions,
/// endpoints under services), a custom resource, keys outside /registry and the apiserver's
/// compact_rev_key.
fn seeded_keys() -> Vec<(String, usize)> {
    let mut seed: Vec<(String, usize)> = Vec::new();
    seed.extend((0..30).map(|i| (format!("/registry/configmaps/default/cm-{i}"), 1000)));
    seed.extend((0..10).map(|i| (format!("/registry/secrets/kube-system/s-{i}"), 2000)));
    seed.extend((0..5).map(|i| (format!("/registry/namespaces/ns-{i}"), 50)));
    seed.extend((0..7).map(|i| {
        (
            format!("/registry/example.com/widgets/team-{}/w-{i}", i % 2),
            3000,
        )
    }));
    seed.extend((0..3).map(|i| (format!("/registry/minions/node-{i}"), 400)));
    seed.extend((0..2).map(|i| (format!("/registry/services/specs/default/svc-{i}"), 300)));
    seed.extend((0..2).map(|i| (format!("/registry/services/endpoints/default/svc-{i}"), 200)));
    seed.extend((0..4).map(|i| (format!("/other/app-{i}"), 10)));
    seed.push(("compact_rev_key".into(), 8));
    seed
}

/// (resource, count, key + value bytes) as analyze must report them, largest first.
fn expected_resources(seed: &[(String, usize)]) -> Vec<(String, u64, u64)> {
    let expect = |resource: &str, filter: &dyn Fn(&str) -> bool| {
        let items: Vec<&(String, usize)> = seed.iter().filter(|(k, _)| filter(k)).collect();
        (
            resource.to_string(),
            items.len() as u64,
            items.iter().map(|(k, v)| (k.len() + v) as u64).sum::<u64>(),
        )
    };
    let mut expected = vec![
        expect("configmaps", &|k| k.starts_with("/registry/configmaps/")),
        expect("secrets", &|k| k.starts_with("/registry/secrets/")),
        expect("namespaces", &|k| k.starts_with("/registry/namespaces/")),
        expect("example.com/widgets", &|k| {
            k.starts_with("/registry/example.com/")
        }),
        expect("nodes", &|k| k.starts_with("/registry/minions/")),
        expect("services", &|k| k.starts_with("/registry/services/specs/")),
        expect("endpoints", &|k| {
            k.starts_with("/registry/services/endpoints/")
        }),
        expect("/other", &|k| k.starts_with("/other/")),
        expect("compact_rev_key", &|k| k == "compact_rev_key"),
        expect("upkeep-test", &|k| k.starts_with("upkeep-test")),
    ];
    expected.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    expected
}

#[test]
fn a_sync_loop_is_ranked_first_and_named_by_the_daemon_through_a_compaction() {
    let cluster = Cluster::start(1, 256 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let daemon_args = daemon_args(
        &cluster,
        &endpoint,
        &["--poll-interval", "500ms", "--forecast-horizon", "0s"],
    );
    let daemon = Daemon::start(&daemon_args, cluster.dir.path());
    daemon.wait_for(Duration::from_secs(10), "churn watch", |d| {
        d.log().contains("churn watch started")
    });

    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_sync_loop(&cluster, 25, 2000, stop.clone());

    // One-shot: analyze --watch ranks the looping key first.
    let mut args = s(&[
        "analyze",
        "--endpoints",
        &endpoint,
        "--watch",
        "3s",
        "-o",
        "json",
    ]);
    args.extend(cluster.pki.flags());
    let out = upkeep(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let churn = json["churn"].as_array().unwrap();
    assert_eq!(churn[0]["key"], LOOP_KEY, "{json:#}");
    assert_eq!(churn[0]["resource"], "example.com/widgets");
    assert!(
        churn[0]["writes_per_second"].as_f64().unwrap() > 10.0,
        "{json:#}"
    );
    assert!(churn[0]["writes"].as_u64().unwrap() > churn[1]["writes"].as_u64().unwrap());

    // A compaction mid-watch does not stop the detector.
    runtime().block_on(async {
        let mut c = cluster.client(std::slice::from_ref(&endpoint)).await;
        support::compact_to_current(&mut c).await;
    });
    let events = |d: &Daemon| d.metric("etcd_upkeep_watch_events_total").unwrap_or(0.0);
    let after_compaction = events(&daemon);
    daemon.wait_for(
        Duration::from_secs(15),
        "events after the compaction",
        |d| events(d) > after_compaction + 50.0,
    );

    // The daemon names it within a minute: /status, metric, and a warning with the vCluster setting.
    daemon.wait_for(Duration::from_secs(60), "sync loop named", |d| {
        let status = d.status_json();
        let top = &status["diagnosis"]["churn_last_minute"][0];
        top["key"] == LOOP_KEY && top["sync_loop"] == true
    });
    let metrics = daemon.get("/metrics").1;
    assert!(metrics.contains(&format!("etcd_upkeep_churn_writes_per_minute{{resource=\"example.com/widgets\",key=\"{LOOP_KEY}\"}}")), "{metrics}");
    assert!(metrics.contains("etcd_upkeep_sync_loops 1"), "{metrics}");
    let log = daemon.log();
    assert!(
        log.contains("sync loop suspected")
            && log.contains(LOOP_KEY)
            && log.contains("widgets.example.com"),
        "{log}"
    );
    assert!(!log.contains("wwwwwwww"), "values must never be logged");
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
}

#[test]
fn a_growth_forecast_is_published_and_the_space_controller_blames_the_sync_loop() {
    let cluster = Cluster::start(1, 128 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let args = daemon_args(
        &cluster,
        &endpoint,
        &["--poll-interval", "500ms", "--quota-backend-bytes", "128Mi"],
    );
    let daemon = Daemon::start(&args, cluster.dir.path());
    // Idle: no forecast (not growing / not enough data).
    std::thread::sleep(Duration::from_secs(2));
    assert!(daemon.status_json()["diagnosis"]["forecast"]["seconds_until_quota"].is_null());

    // ~1 MB/s of history from one looping object: the quota would be reached in about 2 minutes.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_sync_loop(&cluster, 20, 50_000, stop.clone());
    daemon.wait_for(Duration::from_secs(40), "a finite forecast", |d| {
        d.status_json()["diagnosis"]["forecast"]["seconds_until_quota"]
            .as_f64()
            .is_some()
    });
    let eta = daemon.status_json()["diagnosis"]["forecast"]["seconds_until_quota"]
        .as_f64()
        .unwrap();
    assert!(
        (20.0..600.0).contains(&eta),
        "forecast of the right order (about 2 minutes): {eta}"
    );
    daemon.wait_for(
        Duration::from_secs(40),
        "the space controller naming the loop",
        |d| d.log().contains("the history comes from a sync loop"),
    );
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let log = daemon.log();
    assert!(log.contains("within --forecast-horizon"), "{log}");
    assert!(
        log.contains("space controller: keeping") && log.contains(LOOP_KEY),
        "{log}"
    );
    let alarms = support::alarms(&cluster).len();
    assert_eq!(alarms, 0, "prevented: NOSPACE never raised");
}

#[test]
fn thousands_of_keys_written_a_few_times_raise_no_false_alarm_and_the_hot_key_is_still_named() {
    let cluster = Cluster::start(1, 256 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let args = daemon_args(
        &cluster,
        &endpoint,
        &["--poll-interval", "500ms", "--quota-backend-bytes", "256Mi"],
    );
    let daemon = Daemon::start(&args, cluster.dir.path());
    std::thread::sleep(Duration::from_secs(1));
    // 3 000 objects written 3 times each at ≈ 300 writes/s (a busy but healthy control plane),
    // and one object rewritten 5 times a second (300/min: a loop).
    let most_loops = std::cell::Cell::new(0.0f64);
    runtime().block_on(async {
        let mut c = cluster.client(std::slice::from_ref(&endpoint)).await;
        let mut tick = tokio::time::interval(Duration::from_micros(3_333));
        for i in 0..9000u32 {
            tick.tick().await;
            let key = format!("/registry/configmaps/ns-{}/cm-{}", i % 30, i % 3000);
            c.put(key, vec![b'v'; 300], None).await.unwrap();
            if i % 60 == 0 {
                c.put(LOOP_KEY, vec![b'w'; 1000], None).await.unwrap();
                if let Some(n) = daemon.metric("etcd_upkeep_sync_loops") {
                    most_loops.set(most_loops.get().max(n));
                }
            }
        }
    });
    daemon.wait_for(Duration::from_secs(10), "the hot key named", |d| {
        d.log().contains("sync loop suspected")
    });
    let log = daemon.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sync loop suspected"))
        .collect();
    assert!(
        warnings.iter().all(|l| l.contains(LOOP_KEY)),
        "only the hot key is reported: {warnings:#?}"
    );
    assert!(
        most_loops.get() <= 1.0,
        "etcd_upkeep_sync_loops never counted a healthy key"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("sync loop:") && l.contains("/registry/configmaps/")),
        "no healthy key is blamed for history: {log}"
    );
    let status = daemon.status_json();
    let top = &status["diagnosis"]["churn_last_minute"][0];
    assert_eq!(top["key"], LOOP_KEY, "{status}");
    assert!(
        top["writes"].as_u64() <= top["writes_max"].as_u64(),
        "{top}"
    );
}
