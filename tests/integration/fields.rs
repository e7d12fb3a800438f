//! Which fields flip between which field managers, against real etcd — for a JSON custom
//! resource and for a protobuf-encoded built-in (a ConfigMap encoded by prost from Kubernetes'
//! own message definitions, exactly as the apiserver stores it: `k8s\0` + runtime.Unknown).
//! Never the values: secret-looking values planted in the objects appear in no output.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s::{ConfigMap, ManagedFieldsEntry, ObjectMeta, Time, TypeMeta, Unknown};
use prost::Message;
use support::churn::{analyze_json, churn_entry, managers};
use support::{Cluster, Daemon, daemon_args, runtime, s, upkeep};

/// The Kubernetes messages the ConfigMap test encodes, with the field numbers of Kubernetes'
/// generated.proto (`core/v1`, `meta/v1`, `runtime`) as kube-rs' k8s-pb 0.9 generates them, and
/// only the fields the test sets. prost encodes them, not the decoder under test, so the test
/// still checks our wire parsing against an independent encoder; k8s-pb itself (every API group)
/// took 34 s of every cold test build, ahead of every test binary.
mod k8s {
    use std::collections::BTreeMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ConfigMap {
        #[prost(message, optional, tag = "1")]
        pub metadata: Option<ObjectMeta>,
        #[prost(btree_map = "string, string", tag = "2")]
        pub data: BTreeMap<String, String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ObjectMeta {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(string, optional, tag = "3")]
        pub namespace: Option<String>,
        #[prost(string, optional, tag = "6")]
        pub resource_version: Option<String>,
        #[prost(btree_map = "string, string", tag = "11")]
        pub labels: BTreeMap<String, String>,
        #[prost(message, repeated, tag = "17")]
        pub managed_fields: Vec<ManagedFieldsEntry>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ManagedFieldsEntry {
        #[prost(string, optional, tag = "1")]
        pub manager: Option<String>,
        #[prost(string, optional, tag = "2")]
        pub operation: Option<String>,
        #[prost(string, optional, tag = "3")]
        pub api_version: Option<String>,
        #[prost(message, optional, tag = "4")]
        pub time: Option<Time>,
        #[prost(string, optional, tag = "6")]
        pub fields_type: Option<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Time {
        #[prost(int64, optional, tag = "1")]
        pub seconds: Option<i64>,
        #[prost(int32, optional, tag = "2")]
        pub nanos: Option<i32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Unknown {
        #[prost(message, optional, tag = "1")]
        pub type_meta: Option<TypeMeta>,
        #[prost(bytes = "vec", optional, tag = "2")]
        pub raw: Option<Vec<u8>>,
        #[prost(string, optional, tag = "3")]
        pub content_encoding: Option<String>,
        #[prost(string, optional, tag = "4")]
        pub content_type: Option<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeMeta {
        #[prost(string, optional, tag = "1")]
        pub api_version: Option<String>,
        #[prost(string, optional, tag = "2")]
        pub kind: Option<String>,
    }
}

const MIB: u64 = 1024 * 1024;
const SECRET: &str = "hunter2-s3cr3t-value";
const CR_KEY: &str = "/registry/example.com/widgets/default/fought-over";
const CM_KEY: &str = "/registry/configmaps/default/flipping";

/// The custom resource as the apiserver stores it (JSON) after `writer` set `spec.size`.
fn widget(revision: u64, times: &[String; 2]) -> Vec<u8> {
    let size = if revision.is_multiple_of(2) { 3 } else { 5 };
    let entry = |manager: &str, time: &str| {
        serde_json::json!({"manager": manager, "operation": "Update", "apiVersion": "example.com/v1",
            "time": time, "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:size": {}}}})
    };
    serde_json::json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "fought-over", "namespace": "default", "uid": "u-1",
            "resourceVersion": revision.to_string(), "generation": revision,
            "managedFields": [entry("vcluster", &times[0]), entry("widget-operator", &times[1])]},
        "spec": {"size": size, "password": SECRET},
    })
    .to_string()
    .into_bytes()
}

/// The ConfigMap as the apiserver stores it (protobuf) after a label flipped.
fn configmap(revision: u64, times: &[i64; 2]) -> Vec<u8> {
    let entry = |manager: &str, seconds: i64| ManagedFieldsEntry {
        manager: Some(manager.into()),
        operation: Some("Update".into()),
        api_version: Some("v1".into()),
        time: Some(Time {
            seconds: Some(seconds),
            nanos: Some(0),
        }),
        fields_type: Some("FieldsV1".into()),
    };
    let flip = if revision.is_multiple_of(2) {
        "blue"
    } else {
        "green"
    };
    let cm = ConfigMap {
        metadata: Some(ObjectMeta {
            name: Some("flipping".into()),
            namespace: Some("default".into()),
            resource_version: Some(revision.to_string()),
            labels: BTreeMap::from([
                ("app.kubernetes.io/flip".to_string(), flip.to_string()),
                ("team".to_string(), "payments".to_string()),
            ]),
            managed_fields: vec![
                entry("vcluster", times[0]),
                entry("kube-controller", times[1]),
            ],
        }),
        data: BTreeMap::from([("password".to_string(), SECRET.to_string())]),
    };
    let envelope = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
        }),
        raw: Some(cm.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some("application/vnd.kubernetes.protobuf".into()),
    };
    let mut value = b"k8s\0".to_vec();
    value.extend(envelope.encode_to_vec());
    value
}

/// Two managers take turns on both objects, 10 revisions a second each, amid background writes.
fn fight(cluster: &Cluster, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let config = cluster.client_config();
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let mut c = config.connect().await;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut revision = 0u64;
            let (mut cr_times, mut cm_times) = (["t0".to_string(), "t0".to_string()], [0i64, 0]);
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                revision += 1;
                let turn = (revision % 2) as usize;
                cr_times[turn] = format!("2026-12-01T10:00:{:02}Z", revision % 60);
                cm_times[turn] = 1_700_000_000 + revision as i64;
                c.put(CR_KEY, widget(revision, &cr_times), None)
                    .await
                    .unwrap();
                c.put(CM_KEY, configmap(revision, &cm_times), None)
                    .await
                    .unwrap();
                for b in 0..3 {
                    let key = format!("/registry/pods/ns/p-{}", (revision * 3 + b) % 300);
                    c.put(key, format!("{{\"spec\":{{\"n\":{revision}}}}}"), None)
                        .await
                        .unwrap();
                }
            }
        })
    })
}

#[test]
fn analyze_and_the_daemon_name_the_flipping_fields_and_the_writers_never_the_values() {
    let cluster = Cluster::start(1, 256 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let daemon = Daemon::start(
        &daemon_args(&cluster, &endpoint, &["--quota-backend-bytes", "256Mi"]),
        cluster.dir.path(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = fight(&cluster, stop.clone());

    let (stdout, json) = analyze_json(&cluster, &endpoint, "8s");
    let churn = json["churn"].as_array().unwrap();
    assert!(
        [CR_KEY, CM_KEY].contains(&churn[0]["key"].as_str().unwrap()),
        "a fought-over object is ranked first: {churn:#?}"
    );
    let cr = churn_entry(churn, CR_KEY);
    assert_eq!(cr["changed_fields"][0]["path"], "spec.size", "{cr:#}");
    assert_eq!(managers(cr), ["vcluster", "widget-operator"], "{cr:#}");
    let cm = churn_entry(churn, CM_KEY);
    assert_eq!(
        cm["changed_fields"][0]["path"], "metadata.labels.app.kubernetes.io/flip",
        "{cm:#}"
    );
    assert!(
        cm["changed_fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["path"] != "metadata.labels.team" && f["path"] != "data.password"),
        "only what changes: {cm:#}"
    );
    assert_eq!(managers(cm), ["kube-controller", "vcluster"], "{cm:#}");

    // The table shows it compactly.
    let mut table_args = s(&[
        "analyze",
        "--endpoints",
        &endpoint,
        "--watch",
        "8s",
        "-o",
        "table",
    ]);
    table_args.extend(cluster.pki.flags());
    let table = String::from_utf8_lossy(&upkeep(&table_args).stdout).to_string();
    assert!(
        table.contains("changing: `spec.size`") && table.contains("writers taking turns"),
        "{table}"
    );

    // The daemon: /status and the sync-loop warning say the same.
    let (log, status, metrics) = the_daemon_says_the_same(&daemon);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    // Never values: not in analyze's outputs, the daemon's log, /status or /metrics.
    for (name, text) in [
        ("json", &stdout),
        ("table", &table),
        ("log", &log),
        ("status", &status),
        ("metrics", &metrics),
    ] {
        assert!(
            !text.contains(SECRET) && !text.contains("hunter2"),
            "a value leaked into {name}"
        );
        assert!(
            !text.contains("green") && !text.contains("payments"),
            "a label value leaked into {name}"
        );
    }
}

/// The daemon's sync-loop warning names the field and both writers, /status carries them, and
/// /metrics gets no new labels. Returns (log, /status, /metrics) for the leak checks.
fn the_daemon_says_the_same(daemon: &Daemon) -> (String, String, String) {
    daemon.wait_for(
        Duration::from_secs(40),
        "the warning with the fields",
        |d| d.log().contains("changing: `spec.size`"),
    );
    let log = daemon.log();
    assert!(
        log.contains("writers taking turns: `vcluster` (Update) and `widget-operator` (Update)")
            || log.contains(
                "writers taking turns: `widget-operator` (Update) and `vcluster` (Update)"
            ),
        "{log}"
    );
    assert!(
        log.contains("patch or ignore that field in vCluster's sync config"),
        "{log}"
    );
    let status = daemon.get("/status").1;
    assert!(
        status.contains("\"changed_fields\"") && status.contains("\"writers\""),
        "{status}"
    );
    let metrics = daemon.get("/metrics").1;
    assert!(
        !metrics.contains("spec.size") && !metrics.contains("widget-operator"),
        "no new labels"
    );
    (log, status, metrics)
}
