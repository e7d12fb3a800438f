//! The simulated CRD sync loop: one custom object rewritten 25 times a second with 100 KB, as
//! two writers fighting over one field would leave it in etcd.
//!
//! Why it counts two kinds of failure: a write refused for space is what prevention exists to
//! stop; any other failure is transient (raft drops a proposal in flight on the old leader while
//! leadership moves) and the loop's next write goes on, as the apiserver's callers retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::runtime;
use crate::support::Cluster;

pub const LOOP_KEY: &str = "/registry/example.com/widgets/default/looping-widget";

/// Which failures the loop prints as they happen.
#[derive(Clone, Copy, PartialEq)]
pub enum Tell {
    /// Every failed write, with its time and etcd's words.
    EveryFailure,
    /// The first refusal for space only (after it, every write is refused).
    FirstRefusal,
}

#[derive(Default)]
pub struct Counts {
    pub accepted: AtomicU64,
    /// Refused with "database space exceeded".
    pub refused: AtomicU64,
    /// Failed with anything else.
    pub failed: AtomicU64,
}

impl Counts {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

pub struct SyncLoop {
    stop: Arc<AtomicBool>,
    pub counts: Arc<Counts>,
    writer: JoinHandle<()>,
}

impl SyncLoop {
    pub fn start(cluster: &Cluster, tell: Tell) -> SyncLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let config = cluster.client_config();
        let writer = {
            let (stop, counts) = (stop.clone(), counts.clone());
            std::thread::spawn(move || {
                runtime().block_on(async move {
                    let mut c = config.connect().await;
                    let mut tick = tokio::time::interval(Duration::from_millis(40));
                    let (start, mut i) = (Instant::now(), 0);
                    while !stop.load(Ordering::SeqCst) {
                        tick.tick().await;
                        i += 1;
                        let Err(e) = c.put(LOOP_KEY, widget(i), None).await else {
                            counts.accepted.fetch_add(1, Ordering::SeqCst);
                            continue;
                        };
                        let for_space = e.to_string().contains("database space exceeded");
                        let counter = if for_space {
                            &counts.refused
                        } else {
                            &counts.failed
                        };
                        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
                        if tell == Tell::EveryFailure || (for_space && first) {
                            let what = if for_space { "refused" } else { "failed" };
                            let at = start.elapsed().as_secs_f64();
                            println!("    t={at:.1}s  write {what}: {}", etcd_words(&e));
                        }
                    }
                })
            })
        };
        SyncLoop {
            stop,
            counts,
            writer,
        }
    }

    /// Stops the loop (its write in flight finishes) and returns what it counted.
    pub fn stop(self) -> Arc<Counts> {
        self.stop.store(true, Ordering::SeqCst);
        self.writer.join().unwrap();
        self.counts
    }
}

/// etcd's own message out of the client's error (`…, message: "etcdserver: …"`), else the
/// error as the client words it.
fn etcd_words(e: &etcd_client::Error) -> String {
    let text = e.to_string();
    match text.split_once("message: \"") {
        Some((_, rest)) => rest.split('"').next().unwrap_or(rest).to_string(),
        None => text,
    }
}

/// Revision `i` of the looping custom resource, as the apiserver stores it: `spec.size` set by
/// `vcluster` on even revisions and reset by `widget-operator` on odd ones (each manager's
/// managedFields time moves when it writes), and a 100 KB `spec.template` that never changes.
fn widget(i: u64) -> Vec<u8> {
    let time = |writer: u64| {
        let last = if i % 2 == writer {
            i
        } else {
            i.saturating_sub(1)
        };
        format!("2026-12-01T10:{:02}:{:02}Z", (last / 60) % 60, last % 60)
    };
    let entry = |manager: &str, writer: u64| {
        serde_json::json!({"manager": manager, "operation": "Update", "apiVersion": "example.com/v1",
            "time": time(writer), "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:size": {}}}})
    };
    serde_json::json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "looping-widget", "namespace": "default", "resourceVersion": i.to_string(),
            "managedFields": [entry("vcluster", 0), entry("widget-operator", 1)]},
        "spec": {"size": if i.is_multiple_of(2) { 3 } else { 5 }, "template": "t".repeat(100_000)},
    })
    .to_string()
    .into_bytes()
}
