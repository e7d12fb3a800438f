//! Kubernetes Events on the daemon's pod, read back as `kubectl describe pod` finds them.

use super::*;
use crate::support::{Cluster, daemon_args};
use support::api_loop;

#[test]
fn kubernetes_events_name_the_pod_are_counted_when_repeated_and_say_what_was_healed_and_what_loops()
{
    let cluster = Cluster::start(1, 32 * MIB);
    let api = Arc::new(ApiServer::start(&cluster, &[]));
    let uid = make_pod(&api);
    let daemon = events_daemon(&cluster, &api, &uid);
    let events = PodEvents::of(&api, &uid);

    // Two NOSPACE episodes, both healed: one Event, counted twice.
    for episode in 1..=2 {
        let refused = fill_until_refused(&api, &format!("filler-{episode}"));
        assert!(
            refused.message().contains("database space exceeded"),
            "{refused:?}"
        );
        until_accepted(&api, &daemon, Duration::from_secs(30));
        api.wait_for(
            &events.selector,
            Duration::from_secs(20),
            "the heal's Event counted",
            |_| {
                events
                    .first("NospaceHealed")
                    .is_some_and(|e| e["count"] == episode)
            },
        );
        // The filler's history is what was freed; its object is not needed again.
        let filler = format!("{CONFIGMAPS}/filler-{episode}");
        api.call("DELETE", &filler, None, None).unwrap();
    }
    let healed = events.first("NospaceHealed").unwrap();
    assert_eq!(healed["type"], "Normal", "{healed:#}");
    let message = healed["message"].as_str().unwrap();
    assert!(message.starts_with("NOSPACE healed in "), "{healed:#}");
    assert_eq!(healed["involvedObject"]["uid"], uid.as_str());
    assert_eq!(healed["source"]["component"], "etcd-upkeep");

    a_sync_loop_is_a_warning_naming_the_object(&api, &events);
    assert!(
        daemon
            .metric("etcd_upkeep_kubernetes_events_total{outcome=\"recorded\"}")
            .unwrap_or(0.0)
            >= 3.0,
        "{}",
        daemon.get("/metrics").1
    );
}

/// Two managers fight over an object through the API: a Warning names it, never a value.
fn a_sync_loop_is_a_warning_naming_the_object(api: &Arc<ApiServer>, events: &PodEvents) {
    api_loop::install_widgets(api);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = fight(api.clone(), stop.clone());
    // (The fillers above were sync loops too, each its own Event.)
    let fought = |e: &serde_json::Value| {
        let message = e["message"].as_str().unwrap_or_default();
        message.contains("/registry/example.com/widgets/default/w1")
            || message.contains("/registry/configmaps/default/c1")
    };
    api.wait_for(
        &events.selector,
        Duration::from_secs(60),
        "the sync-loop Event",
        |_| events.all("SyncLoopSuspected").iter().any(fought),
    );
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let looping = events
        .all("SyncLoopSuspected")
        .into_iter()
        .find(fought)
        .unwrap();
    assert_eq!(looping["type"], "Warning");
    let message = looping["message"].as_str().unwrap();
    assert!(!message.contains("hunter2"), "a value leaked into an Event");
}

/// The pod the sidecar runs in (no kubelet here: it stays Pending, which is all Events need),
/// with the service account a controller-manager would have made. Returns its uid.
fn make_pod(api: &ApiServer) -> String {
    let account = api
        .call(
            "POST",
            "/api/v1/namespaces/default/serviceaccounts",
            Some("application/json"),
            Some(r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default"}}"#),
        )
        .unwrap();
    assert!(account.ok(), "{account:?}");
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "vcluster-0", "namespace": "default"},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{"name": "etcd-upkeep", "image": "etcd-upkeep"}],
        },
    })
    .to_string();
    let path = "/api/v1/namespaces/default/pods";
    let pod = api
        .call("POST", path, Some("application/json"), Some(&pod))
        .unwrap();
    assert!(pod.ok(), "{pod:?}");
    pod.body["metadata"]["uid"].as_str().unwrap().to_string()
}

/// The sidecar with Events on, about pod `uid`, prevention off (so the fillers raise NOSPACE).
fn events_daemon(cluster: &Cluster, api: &ApiServer, uid: &str) -> Daemon {
    let token = api.token_file().display().to_string();
    let ca = cluster.pki.ca.display().to_string();
    let flags = [
        "--poll-interval",
        "1s",
        "--space-target",
        "0",
        "--kubernetes-events",
        "--kubernetes-api",
        &api.address,
        "--kubernetes-token-file",
        &token,
        "--kubernetes-ca-file",
        &ca,
        "--pod-name",
        "vcluster-0",
        "--pod-namespace",
        "default",
        "--pod-uid",
        uid,
    ];
    let args = daemon_args(cluster, &cluster.endpoints()[0], &flags);
    Daemon::start(&args, cluster.dir.path())
}

/// The Events `kubectl describe pod vcluster-0` lists: selected by the pod's name, namespace,
/// kind and uid.
struct PodEvents<'a> {
    api: &'a ApiServer,
    selector: String,
}

impl PodEvents<'_> {
    fn of<'a>(api: &'a ApiServer, uid: &str) -> PodEvents<'a> {
        PodEvents {
            api,
            selector: format!(
                "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dvcluster-0,involvedObject.namespace%3Ddefault,involvedObject.kind%3DPod,involvedObject.uid%3D{uid}"
            ),
        }
    }

    fn all(&self, reason: &str) -> Vec<serde_json::Value> {
        let Ok(list) = self.api.call("GET", &self.selector, None, None) else {
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
    }

    fn first(&self, reason: &str) -> Option<serde_json::Value> {
        self.all(reason).into_iter().next()
    }
}
