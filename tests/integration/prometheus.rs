//! The shipped alert rules and dashboard against a real Prometheus (Debian's `prometheus`, which
//! the test setup installs) scraping a real daemon: `promtool test rules` proves the rules on
//! synthetic series; this proves them on what Prometheus really sees.
//!
//! Live data is forced over the quota: `EtcdHealBlockedLiveDataOverQuota` must go firing, and
//! resolve after objects are deleted and the heal completes. Then every panel query of the Grafana
//! dashboard must parse and return data. Only the test copy of the rules has its `for:` shortened.

use crate::support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Cluster, Daemon, alarms, daemon_args, force_nospace, free_port, http_get, runtime};

const MIB: u64 = 1024 * 1024;
const ALERT: &str = "EtcdHealBlockedLiveDataOverQuota";

struct Prometheus {
    child: Child,
    address: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target` every second with the shipped rules, `for:` set to 2 s.
    fn start(dir: &Path, target: &str) -> Prometheus {
        let rules = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/prometheus/etcd-upkeep-rules.yaml"
        ))
        .unwrap();
        let rules: String = rules
            .lines()
            .map(|l| match l.split_once("for: ") {
                Some((indent, _)) if indent.trim().is_empty() => format!("{indent}for: 2s\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        std::fs::write(dir.join("rules.yaml"), rules).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [rules.yaml]\n\
             scrape_configs:\n  - job_name: etcd-upkeep\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (Debian package prometheus; scripts/setup.sh installs it)");
        let p = Prometheus { child, address };
        p.wait(Duration::from_secs(30), "Prometheus ready", |p| {
            http_get(&p.address, "/-/ready").0 == 200
        });
        p
    }

    fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = http_get(&self.address, path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The state of the alert: "firing", "pending", or "inactive" when it is not listed.
    fn alert_state(&self, name: &str) -> String {
        let alerts = self.api("/api/v1/alerts");
        alerts["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .map_or("inactive".into(), |a| a["state"].as_str().unwrap().into())
    }

    fn query(&self, expr: &str) -> serde_json::Value {
        let (status, body) = http_get(
            &self.address,
            &format!("/api/v1/query?query={}", percent_encode(expr)),
        );
        assert_eq!(status, 200, "query {expr}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn wait(&self, limit: Duration, what: &str, check: impl Fn(&Prometheus) -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("timed out waiting for {what}");
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every panel query of the shipped dashboard, with Grafana's variables filled in.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/etcd-upkeep-dashboard.json"
    ))
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let expr = expr
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m");
            queries.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    assert!(queries.len() >= 10, "{queries:?}");
    queries
}

#[test]
fn the_live_data_alert_fires_and_resolves_in_prometheus_and_every_dashboard_query_has_data() {
    let cluster = Cluster::start(1, 16 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    // Distinct keys: live data, not history, fills the quota.
    force_nospace(&cluster, &endpoint, 100_000);
    let daemon = Daemon::start(
        &daemon_args(&cluster, &endpoint, &["--quota-backend-bytes", "16Mi"]),
        cluster.dir.path(),
    );
    let prometheus = Prometheus::start(cluster.dir.path(), &daemon.address);

    prometheus.wait(Duration::from_secs(60), "the alert firing", |p| {
        p.alert_state(ALERT) == "firing"
    });
    assert!(!alarms(&cluster).is_empty(), "NOSPACE stays armed");

    // Delete most objects (allowed during NOSPACE): the daemon heals and the alert resolves.
    runtime().block_on(async {
        let mut c = cluster.client(std::slice::from_ref(&endpoint)).await;
        let options = etcd_client::GetOptions::new()
            .with_prefix()
            .with_keys_only();
        let listed = c.get("/registry/fill/", Some(options)).await.unwrap();
        for kv in &listed.kvs()[..listed.kvs().len() - 20] {
            c.delete(kv.key().to_vec(), None).await.unwrap();
        }
    });
    daemon.wait_for(Duration::from_secs(60), "healed after deletions", |_| {
        alarms(&cluster).is_empty()
    });
    prometheus.wait(Duration::from_secs(30), "the alert resolved", |p| {
        p.alert_state(ALERT) == "inactive"
    });

    // Every panel: the query parses and returns data (the heal above gave every counter and
    // histogram a sample).
    let has_data = |expr: &str| {
        let answer = prometheus.query(expr);
        answer["status"] == "success" && !answer["data"]["result"].as_array().unwrap().is_empty()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !dashboard_queries().iter().all(|(_, e)| has_data(e)) {
        std::thread::sleep(Duration::from_millis(500));
    }
    for (title, expr) in dashboard_queries() {
        let answer = prometheus.query(&expr);
        assert_eq!(answer["status"], "success", "{title}: {expr}: {answer}");
        assert!(
            !answer["data"]["result"].as_array().unwrap().is_empty(),
            "{title}: {expr} returned no data"
        );
    }
}
