//! Reading what `etcd-upkeep analyze` says about churn: the sync-loop tests against etcd
//! directly (`fields`) and through the real apiserver (`apiserver::fields`) ask the same.

use super::{Cluster, s, upkeep};

/// `analyze --watch <watch> -o json` on `endpoint`: its stdout and the parsed report.
pub fn analyze_json(cluster: &Cluster, endpoint: &str, watch: &str) -> (String, serde_json::Value) {
    let mut args = s(&[
        "analyze",
        "--endpoints",
        endpoint,
        "--watch",
        watch,
        "-o",
        "json",
    ]);
    args.extend(cluster.pki.flags());
    let out = upkeep(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_str(&stdout).unwrap();
    (stdout, json)
}

/// The churn entry of `key` (the test fails when it is not ranked).
pub fn churn_entry<'a>(churn: &'a [serde_json::Value], key: &str) -> &'a serde_json::Value {
    churn
        .iter()
        .find(|c| c["key"] == key)
        .unwrap_or_else(|| panic!("{key} not ranked: {churn:#?}"))
}

/// The field managers an entry names as its writers, sorted.
pub fn managers(entry: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = entry["writers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["manager"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}
