//! The README's flag reference is the binary's own help: this fails when they drift apart, and
//! checks that README, rules and dashboard only name metrics the daemon exports.

use std::process::Command;

#[test]
fn readme_flag_reference_matches_the_help_output() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/readme-flags.sh"))
        .arg(env!("CARGO_BIN_EXE_etcd-upkeep"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let begin = readme.find("<!-- flags:begin -->\n").expect("begin marker")
        + "<!-- flags:begin -->\n".len();
    let end = readme.find("<!-- flags:end -->").expect("end marker");
    assert!(
        readme[begin..end] == generated,
        "README.md's flag reference is stale: run scripts/readme-flags.sh and paste its output between the markers"
    );
}

#[test]
fn every_metric_named_in_docs_rules_and_dashboard_is_exported() {
    let root = env!("CARGO_MANIFEST_DIR");
    let source = [
        "src/report/metrics/mod.rs",
        "src/report/metrics/register.rs",
    ]
    .iter()
    .map(|p| std::fs::read_to_string(format!("{root}/{p}")).unwrap())
    .collect::<String>();
    for file in [
        "README.md",
        "deploy/prometheus/etcd-upkeep-rules.yaml",
        "deploy/grafana/etcd-upkeep-dashboard.json",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("etcd_upkeep_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            // The registered name is the metric name without prefix, type suffixes and unit.
            let base = name
                .trim_start_matches("etcd_upkeep_")
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum")
                .trim_end_matches("_total")
                .trim_end_matches("_bytes")
                .trim_end_matches("_seconds")
                .trim_end_matches("_ratio")
                .trim_end_matches('_');
            if base.is_empty() || name.ends_with('_') {
                continue; // a prefix mention such as `etcd_upkeep_*`
            }
            assert!(
                source.contains(&format!("\"{base}\"")),
                "{file} names {name}, which the daemon does not export"
            );
        }
    }
}

#[test]
fn the_snippet_never_gates_the_vcluster_pod_on_readiness() {
    let root = env!("CARGO_MANIFEST_DIR");
    let snippet = std::fs::read_to_string(format!("{root}/helm-values-snippet.yaml")).unwrap();
    let probes: Vec<&str> = snippet
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| l.trim_start().starts_with("readinessProbe:"))
        .collect();
    assert!(
        probes.is_empty(),
        "a sidecar readiness probe gates the vCluster pod: {probes:?}"
    );
    let documents = snippet
        .split("\n---\n")
        .filter(|d| {
            d.lines()
                .any(|l| l.trim_start().starts_with("sidecarContainers:"))
        })
        .count();
    let liveness = snippet.matches("livenessProbe:").count();
    assert!(
        documents == 2 && liveness == 2,
        "both sidecars keep the /healthz liveness probe"
    );
    assert!(
        snippet.contains("--act-when=elected") && snippet.contains("replicas: 3"),
        "the deployed document runs three identical instances that elect one actor"
    );
}
