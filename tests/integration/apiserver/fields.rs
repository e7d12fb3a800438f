//! A real sync loop: two field managers server-side-applying one field of a custom resource
//! (JSON) and of a ConfigMap (protobuf), named from what the real apiserver wrote.

use super::*;
use crate::support::churn::{analyze_json, churn_entry, managers};
use crate::support::{Cluster, daemon_args};
use support::api_loop;

#[test]
fn a_sync_loop_through_the_api_is_named_with_its_field_and_both_managers_never_the_values() {
    let cluster = Cluster::start(1, 256 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let api = Arc::new(ApiServer::start(&cluster, &[]));
    let daemon = Daemon::start(
        &daemon_args(&cluster, &endpoint, &["--poll-interval", "1s"]),
        cluster.dir.path(),
    );
    api_loop::install_widgets(&api);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = fight(api.clone(), stop.clone());

    let (stdout, json) = analyze_json(&cluster, &endpoint, "8s");
    let churn = json["churn"].as_array().unwrap();
    let cr = churn_entry(churn, "/registry/example.com/widgets/default/w1");
    assert_eq!(cr["changed_fields"][0]["path"], "spec.replicas", "{cr:#}");
    assert_eq!(
        managers(cr),
        ["vcluster-syncer", "widget-operator"],
        "{cr:#}"
    );
    let cm = churn_entry(churn, "/registry/configmaps/default/c1");
    assert_eq!(cm["changed_fields"][0]["path"], "data.mode", "{cm:#}");
    assert_eq!(
        managers(cm),
        ["vcluster-syncer", "widget-operator"],
        "{cm:#}"
    );

    // The daemon's sync-loop warning names the same, from the same real writes.
    daemon.wait_for(Duration::from_secs(60), "the sync-loop warning", |d| {
        let log = d.log();
        log.contains("changing: `spec.replicas`") || log.contains("changing: `data.mode`")
    });
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(writes > 50, "the loop really ran: {writes} rounds");
    let log = daemon.log();
    assert!(
        log.contains("`vcluster-syncer` (Apply)") && log.contains("`widget-operator` (Apply)"),
        "both managers and their operation named: {log}"
    );
    let status = daemon.get("/status").1;
    let metrics = daemon.get("/metrics").1;
    for (name, text) in [
        ("analyze", &stdout),
        ("log", &log),
        ("status", &status),
        ("metrics", &metrics),
    ] {
        assert!(!text.contains("hunter2"), "a value leaked into {name}");
    }
}
