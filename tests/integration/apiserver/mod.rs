//! etcd-upkeep against etcd's real client: a kube-apiserver (1.36, vCluster's default, built from
//! the Go module proxy) in front of the test etcd. Every object here is made through the API, so
//! the protobuf, the JSON and the managedFields the daemon decodes are the real apiserver's, and
//! a NOSPACE is seen the way an API client sees it.
//!
//! These tests need `.tools/kube-1.36.3/kube-apiserver`: they run from
//! `scripts/apiserver-tests.sh` (CI's `.ci/run`), which builds it first, not from the README's
//! test command (the build alone takes about 5 minutes on a fresh machine).
//!
//! One file per behaviour: `nospace` (NOSPACE and live data through the API), `fields` (a real
//! sync loop, named), `prevention` (a 2 MB/s loop held below the quota, and the history it keeps
//! against etcd's default progress notifications), `progress_notify` (the same loop on the
//! snippet's etcd flags: every consistency check passes), `events` (Kubernetes Events on the
//! daemon's pod). Shared here: the objects they write.

mod events;
mod fields;
mod nospace;
mod prevention;
mod progress_notify;

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::apiserver::{Answer, ApiServer};
use support::{Daemon, runtime};

const MIB: u64 = 1024 * 1024;

/// Seconds a loop runs: `var` when set (`scripts/bench.sh apiserver` runs longer), else `default`.
fn seconds_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
/// Planted in every value the managers write: it must appear in no output of etcd-upkeep.
const SECRET: &str = "hunter2-do-not-print";

fn configmap(name: &str, data: &serde_json::Value) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": data,
    })
    .to_string()
}

const WIDGET: &str = "/apis/example.com/v1/namespaces/default/widgets/w1";
const FOUGHT_CM: &str = "/api/v1/namespaces/default/configmaps/c1";

/// Two managers apply their own value of one field, in turn, 5 times a second each, on a custom
/// resource and on a ConfigMap: the sync loop of a vCluster syncer and a host-side controller.
fn fight(api: Arc<ApiServer>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut writes = 0;
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                let (manager, replicas, mode) = if writes % 2 == 0 {
                    ("vcluster-syncer", 1, "blue")
                } else {
                    ("widget-operator", 3, "green")
                };
                let widget = serde_json::json!({
                    "apiVersion": "example.com/v1",
                    "kind": "Widget",
                    "metadata": {"name": "w1", "namespace": "default"},
                    "spec": {"replicas": replicas, "token": format!("{SECRET}-{manager}")},
                })
                .to_string();
                let cm = configmap(
                    "c1",
                    &serde_json::json!({"mode": format!("{mode}-{SECRET}")}),
                );
                for (path, body) in [(WIDGET, widget), (FOUGHT_CM, cm)] {
                    let answer = api.apply(path, manager, &body).await.unwrap();
                    assert!(answer.ok(), "{manager} on {path}: {answer:?}");
                }
                writes += 1;
            }
            writes
        })
    })
}

/// Rewrites one ConfigMap with 400 KB until the API refuses (history: the heal frees it).
fn fill_until_refused(api: &ApiServer, name: &str) -> Answer {
    let path = format!("{CONFIGMAPS}/{name}");
    for i in 0..2_000 {
        let body = configmap(
            name,
            &serde_json::json!({"blob": format!("{i:06}").repeat(400_000 / 6)}),
        );
        let answer = runtime()
            .block_on(api.apply(&path, "filler", &body))
            .unwrap();
        if !answer.ok() {
            return answer;
        }
    }
    panic!("the API never refused a write");
}

/// Waits until a small write through the API (a probe ConfigMap, applied) is accepted again.
fn until_accepted(api: &ApiServer, daemon: &Daemon, limit: Duration) {
    let started = Instant::now();
    let body = configmap("probe", &serde_json::json!({"ok": "yes"}));
    let path = format!("{CONFIGMAPS}/probe");
    while !runtime()
        .block_on(api.apply(&path, "probe", &body))
        .is_ok_and(|a| a.ok())
    {
        assert!(
            started.elapsed() < limit,
            "no write accepted within {limit:?}; daemon log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
