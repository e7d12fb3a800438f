//! Kubernetes Events on the daemon's pod, read back as `kubectl describe pod` finds them.

use super::*;
use crate::support::{Cluster, daemon_args};
use support::api_loop;

#[test]
fn kubernetes_events_name_the_pod_are_counted_when_repeated_and_say_what_was_healed_and_what_loops()
{
    let cluster = Cluster::start(1, 32 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let api = Arc::new(ApiServer::start(&cluster, &[]));
    // The pod the sidecar runs in (no kubelet here: it stays Pending, which is all Events need),
    // with the service account a controller-manager would have made.
    let account = api
        .call(
            "POST",
            "/api/v1/namespaces/default/serviceaccounts",
            Some("application/json"),
            Some(r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default"}}"#),
        )
        .unwrap();
    assert!(account.ok(), "{account:?}");
    let pod = api
        .call(
            "POST",
            "/api/v1/namespaces/default/pods",
            Some("application/json"),
            Some(
                &serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "vcluster-0", "namespace": "default"},
                    "spec": {
                        "automountServiceAccountToken": false,
                        "containers": [{"name": "etcd-upkeep", "image": "etcd-upkeep"}],
                    },
                })
                .to_string(),
            ),
        )
        .unwrap();
    assert!(pod.ok(), "{pod:?}");
    let uid = pod.body["metadata"]["uid"].as_str().unwrap().to_string();
    let token = api.token_file();
    let daemon = Daemon::start(
        &daemon_args(
            &cluster,
            &endpoint,
            &[
                "--poll-interval",
                "1s",
                "--space-target",
                "0",
                "--kubernetes-events",
                "--kubernetes-api",
                &api.address,
                "--kubernetes-token-file",
                &token.display().to_string(),
                "--kubernetes-ca-file",
                &cluster.pki.ca.display().to_string(),
                "--pod-name",
                "vcluster-0",
                "--pod-namespace",
                "default",
                "--pod-uid",
                &uid,
            ],
        ),
        cluster.dir.path(),
    );
    // The Events `kubectl describe pod vcluster-0` lists: selected by the pod's name, namespace,
    // kind and uid.
    let selector = format!(
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dvcluster-0,involvedObject.namespace%3Ddefault,involvedObject.kind%3DPod,involvedObject.uid%3D{uid}"
    );
    let events = |reason: &str| -> Vec<serde_json::Value> {
        let Ok(list) = api.call("GET", &selector, None, None) else {
            return Vec::new();
        };
        list.body["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|e| e["reason"] == reason)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let event = |reason: &str| events(reason).into_iter().next();

    // Two NOSPACE episodes, both healed: one Event, counted twice.
    for episode in 1..=2 {
        let refused = fill_until_refused(&api, &format!("filler-{episode}"));
        assert!(
            refused.message().contains("database space exceeded"),
            "{refused:?}"
        );
        until_accepted(&api, &daemon, Duration::from_secs(30));
        api.wait_for(
            &selector,
            Duration::from_secs(20),
            "the heal's Event counted",
            |_| event("NospaceHealed").is_some_and(|e| e["count"] == episode),
        );
        // The filler's history is what was freed; its object is not needed again.
        api.call(
            "DELETE",
            &format!("{CONFIGMAPS}/filler-{episode}"),
            None,
            None,
        )
        .unwrap();
    }
    let healed = event("NospaceHealed").unwrap();
    assert_eq!(healed["type"], "Normal", "{healed:#}");
    assert!(
        healed["message"]
            .as_str()
            .unwrap()
            .starts_with("NOSPACE healed in "),
        "{healed:#}"
    );
    assert_eq!(healed["involvedObject"]["uid"], uid.as_str());
    assert_eq!(healed["source"]["component"], "etcd-upkeep");

    // A sync loop: a Warning that names the object.
    api_loop::install_widgets(&api);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = fight(api.clone(), stop.clone());
    // (The fillers above were sync loops too, each its own Event.)
    let fought = |e: &serde_json::Value| {
        let message = e["message"].as_str().unwrap_or_default();
        message.contains("/registry/example.com/widgets/default/w1")
            || message.contains("/registry/configmaps/default/c1")
    };
    api.wait_for(
        &selector,
        Duration::from_secs(60),
        "the sync-loop Event",
        |_| events("SyncLoopSuspected").iter().any(fought),
    );
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let looping = events("SyncLoopSuspected")
        .into_iter()
        .find(fought)
        .unwrap();
    assert_eq!(looping["type"], "Warning");
    let message = looping["message"].as_str().unwrap();
    assert!(
        message.contains("/registry/example.com/widgets/default/w1")
            || message.contains("/registry/configmaps/default/c1"),
        "{looping:#}"
    );
    assert!(!message.contains("hunter2"), "a value leaked into an Event");
    assert!(
        daemon
            .metric("etcd_upkeep_kubernetes_events_total{outcome=\"recorded\"}")
            .unwrap_or(0.0)
            >= 3.0,
        "{}",
        daemon.get("/metrics").1
    );
}
