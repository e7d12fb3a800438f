//! NOSPACE as an API client meets it: from history (healed, nothing lost, no apiserver restart)
//! and from live data (Secrets: named, never disarmed for nothing, healed once deleted).

use super::*;
use crate::support::{Cluster, daemon_args};

#[test]
fn nospace_seen_through_the_api_is_healed_without_an_apiserver_restart_and_nothing_is_lost() {
    let cluster = Cluster::start(1, 48 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let mut api = ApiServer::start(&cluster, &[]);
    // Prevention off: history reaches the quota, and the heal is what is measured.
    let daemon = Daemon::start(
        &daemon_args(
            &cluster,
            &endpoint,
            &["--poll-interval", "1s", "--space-target", "0"],
        ),
        cluster.dir.path(),
    );
    // Objects written before the alarm: every one must still be readable after it.
    make_kept_configmaps(&api);
    // One object rewritten with 400 KB until the API refuses: history, which the heal frees.
    let blob = |i: usize| format!("{i:06}").repeat(400_000 / 6);
    let path = format!("{CONFIGMAPS}/filler");
    let (mut acknowledged, mut refused) = (None, None);
    let started = Instant::now();
    for i in 0..2_000 {
        let body = configmap("filler", &serde_json::json!({"blob": blob(i)}));
        let answer = runtime()
            .block_on(api.apply(&path, "filler", &body))
            .unwrap();
        if answer.ok() {
            acknowledged = Some(i);
        } else {
            refused = Some((i, answer));
            break;
        }
    }
    let (refused_at, answer) = refused.expect("the API never refused a write");
    let refused_when = Instant::now();
    // What a client sees: etcd's error, passed through as a 500.
    eprintln!(
        "after {} writes in {:.1}s the API answered {}: {}",
        refused_at,
        started.elapsed().as_secs_f64(),
        answer.status,
        answer.message()
    );
    assert_eq!(answer.status, 500, "{answer:?}");
    assert!(
        answer.message().contains("database space exceeded"),
        "{answer:?}"
    );

    // The daemon heals it; the first API write accepted afterwards ends the outage.
    until_accepted(&api, &daemon, Duration::from_secs(60));
    let outage = refused_when.elapsed().as_secs_f64();
    eprintln!("first accepted API write {outage:.2}s after the first refused one");
    daemon.wait_for(Duration::from_secs(10), "the heal said", |d| {
        d.log().contains("NOSPACE healed")
    });

    // The same apiserver, never restarted, reads everything written before the alarm.
    assert!(api.running(), "the apiserver died");
    kept_configmaps_read_back(&api);
    // The filler holds its last acknowledged write (or the refused one: etcd applies the put
    // that crosses the quota before it raises the alarm).
    let filler = api.call("GET", &path, None, None).unwrap();
    let held = filler.body["data"]["blob"].as_str().unwrap_or_default();
    let last = acknowledged.expect("no write accepted before the refusal");
    assert!(
        held == blob(last) || held == blob(refused_at),
        "the filler lost its last write: holds {}",
        &held[..12.min(held.len())]
    );
    let list = api.call("GET", CONFIGMAPS, None, None).unwrap();
    assert!(
        list.body["items"].as_array().is_some_and(|i| i.len() >= 22),
        "the list through the API: {list:?}"
    );
}

/// ConfigMaps `kept-0` … `kept-19`, each with its number.
fn make_kept_configmaps(api: &ApiServer) {
    for i in 0..20 {
        let body = configmap(
            &format!("kept-{i}"),
            &serde_json::json!({"n": i.to_string()}),
        );
        let made = api
            .call("POST", CONFIGMAPS, Some("application/json"), Some(&body))
            .unwrap();
        assert!(made.ok(), "{made:?}");
    }
}

fn kept_configmaps_read_back(api: &ApiServer) {
    for i in 0..20 {
        let got = api
            .call("GET", &format!("{CONFIGMAPS}/kept-{i}"), None, None)
            .unwrap();
        assert!(got.ok(), "kept-{i}: {got:?}");
        assert_eq!(got.body["data"]["n"], i.to_string());
    }
}

const SECRETS: &str = "/api/v1/namespaces/default/secrets";

#[test]
fn secrets_over_the_quota_are_named_never_disarmed_for_nothing_and_healed_once_deleted() {
    let cluster = Cluster::start(1, 24 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let mut api = ApiServer::start(&cluster, &[]);
    let daemon = Daemon::start(
        &daemon_args(&cluster, &endpoint, &["--poll-interval", "1s"]),
        cluster.dir.path(),
    );
    // Distinct Secrets of ~500 KB: live data, which no compaction or defragmentation frees.
    // The first refusals may still be healed (the apiserver's own history is freed), so the
    // writer goes on until the daemon refuses to disarm: live data is over the line.
    let payload = base64_of(&vec![b's'; 500_000]);
    let blocked = |d: &Daemon| {
        d.metric("etcd_upkeep_heal_blocked{reason=\"live_data_over_quota\"}") == Some(1.0)
    };
    let (mut made, mut refusal) = (0, None);
    while !blocked(&daemon) {
        let secret = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": format!("blob-{made}"), "namespace": "default"},
            "type": "Opaque",
            "data": {"v": payload},
        })
        .to_string();
        let answer = api
            .call("POST", SECRETS, Some("application/json"), Some(&secret))
            .unwrap();
        if answer.ok() {
            made += 1;
        } else {
            refusal.get_or_insert(answer);
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(made < 200, "200 Secrets of 500 KB fit a 24 MiB quota?");
    }
    let refusal = refusal.expect("blocked before any refusal");
    assert!(
        refusal.message().contains("database space exceeded"),
        "{refusal:?}"
    );
    eprintln!(
        "{made} Secrets made; the API's refusal: {}",
        refusal.message()
    );

    // The resource to look at is named, and nothing is disarmed while live data is over it.
    daemon.wait_for(Duration::from_secs(30), "the biggest resource named", |d| {
        d.log().contains("the biggest resources in etcd: secrets")
    });
    let disarms = |d: &Daemon| d.log().matches("disarmed NOSPACE").count();
    let before = disarms(&daemon);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        disarms(&daemon),
        before,
        "a futile disarm with live data over the line: {}",
        daemon.log()
    );
    assert!(!support::alarms(&cluster).is_empty(), "NOSPACE stays armed");

    // Deleted through the API (etcd accepts deletes during NOSPACE): healed within a poll or two.
    for i in 0..made {
        let gone = api
            .call("DELETE", &format!("{SECRETS}/blob-{i}"), None, None)
            .unwrap();
        assert!(gone.ok(), "delete blob-{i} during NOSPACE: {gone:?}");
    }
    let deleted = Instant::now();
    until_accepted(&api, &daemon, Duration::from_secs(30));
    eprintln!(
        "first accepted API write {:.2}s after the last delete",
        deleted.elapsed().as_secs_f64()
    );
    assert!(api.running(), "the apiserver died");
}

/// Standard base64 (the API's encoding of a Secret's data).
fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
