//! A sync loop through the real apiserver, and what it did to etcd and to the apiserver: the
//! workload of the prevention test and of `scripts/bench.sh apiserver` (issue 22).
//!
//! The loop is what vCluster users meet: one custom object with a large field, rewritten by two
//! field managers in turn (server-side apply, `force`), beside an ordinary client that writes a
//! small ConfigMap — the writes that must never fail. Figures: writes accepted and refused, the
//! db's peak, NOSPACE alarms, and the apiserver's own signs of compacted-away watches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::apiserver::ApiServer;
use super::{Cluster, runtime};

/// A namespaced custom resource with a free-form spec (the apiserver stores it as JSON).
pub fn widget_crd() -> String {
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true
                    }}
                }}
            }]
        }
    })
    .to_string()
}

/// Creates the widgets resource and waits until it is served.
pub fn install_widgets(api: &ApiServer) {
    let crd = api
        .call(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            Some("application/json"),
            Some(&widget_crd()),
        )
        .unwrap();
    assert!(crd.ok(), "{crd:?}");
    api.wait_for(
        "/apis/example.com/v1/namespaces/default/widgets",
        Duration::from_secs(30),
        "the widgets resource served",
        |a| a.ok(),
    );
}

/// What a loop run saw.
#[derive(Debug, Default)]
pub struct LoopFigures {
    pub loop_ok: u64,
    pub loop_refused: u64,
    pub ordinary_ok: u64,
    pub ordinary_refused: u64,
    /// The first refusal's message and when it came (seconds into the run).
    pub first_refusal: Option<(f64, String)>,
    pub peak_db: u64,
    /// Polls (each second) that found a NOSPACE alarm raised.
    pub nospace_seconds: u64,
    /// The apiserver's watch-cache (re)initialisations during the run: each is a relist.
    pub cache_initialisations: f64,
    /// Its log lines about watches of compacted revisions, and failed consistency checks.
    pub compacted_watch_lines: usize,
    pub consistency_errors: usize,
    /// The apiserver's own count of its watch-cache consistency checks during the run
    /// (`apiserver_storage_consistency_checks_total`): all, and those that did not pass
    /// (`error`: etcd could not be read at the cache's revision; `failure`: a digest differed).
    pub consistency_checks: f64,
    pub consistency_checks_not_passed: f64,
}

#[derive(Default)]
struct Counts {
    loop_ok: AtomicU64,
    loop_refused: AtomicU64,
    ordinary_ok: AtomicU64,
    ordinary_refused: AtomicU64,
}

/// Counted by the apiserver's cacher each time a resource's watch cache is (re)built from a
/// LIST: after a watch of a compacted revision, that is a relist.
const INITIALISATIONS: &str = "apiserver_watch_cache_initializations_total";
const CHECKS: &str = "apiserver_storage_consistency_checks_total";

/// What the apiserver had counted and logged before the loop, to report only what came during.
struct Before {
    initialisations: f64,
    checks: f64,
    not_passed: f64,
    log_len: usize,
}

impl Before {
    fn take(api: &ApiServer) -> Before {
        // Its absence would make the count a silent 0, so it must be there.
        assert!(
            api.call("GET", "/metrics", None, None)
                .unwrap()
                .text
                .contains(INITIALISATIONS),
            "the apiserver exports no {INITIALISATIONS}"
        );
        Before {
            initialisations: api.metric_sum(INITIALISATIONS),
            checks: api.metric_sum(CHECKS),
            not_passed: not_passed(api),
            log_len: api.log().len(),
        }
    }

    /// The apiserver's side of `figures`: relists, consistency checks, and its log's lines
    /// about compacted watches and failed checks since `take`.
    fn since(&self, api: &ApiServer, figures: &mut LoopFigures) {
        figures.cache_initialisations = api.metric_sum(INITIALISATIONS) - self.initialisations;
        figures.consistency_checks = api.metric_sum(CHECKS) - self.checks;
        figures.consistency_checks_not_passed = not_passed(api) - self.not_passed;
        let log = api.log();
        let during = &log[self.log_len.min(log.len())..];
        figures.compacted_watch_lines = during
            .lines()
            .filter(|l| l.contains("has been compacted") || l.contains("too old resource version"))
            .count();
        figures.consistency_errors = during
            .lines()
            .filter(|l| l.contains("Cache consistency check error"))
            .count();
    }
}

fn not_passed(api: &ApiServer) -> f64 {
    api.metric_sum_where(CHECKS, "status=\"error\"")
        + api.metric_sum_where(CHECKS, "status=\"failure\"")
}

/// Runs the loop for `seconds`: `per_second` rewrites of `size` bytes (two managers taking
/// turns), an ordinary write every 200 ms, and the db sampled every second.
pub fn run(
    api: &Arc<ApiServer>,
    cluster: &Cluster,
    seconds: u64,
    per_second: u64,
    size: usize,
) -> LoopFigures {
    let before = Before::take(api);
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let first_refusal = Arc::new(std::sync::Mutex::new(None));
    let started = Instant::now();
    // One task per manager, each at half the rate: a slow answer to one does not slow the other.
    let mut writers: Vec<_> = ["vcluster-syncer", "widget-operator"]
        .into_iter()
        .enumerate()
        .map(|(turn, manager)| {
            let loop_writer = LoopWriter {
                api: api.clone(),
                stop: stop.clone(),
                counts: counts.clone(),
                first_refusal: first_refusal.clone(),
                started,
            };
            std::thread::spawn(move || loop_writer.rewrite(turn as u64, manager, per_second, size))
        })
        .collect();
    writers.push(ordinary_writer(api.clone(), stop.clone(), counts.clone()));
    let mut figures = LoopFigures::default();
    sample_etcd(cluster, started, seconds, &mut figures);
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    figures.loop_ok = counts.loop_ok.load(Ordering::SeqCst);
    figures.loop_refused = counts.loop_refused.load(Ordering::SeqCst);
    figures.ordinary_ok = counts.ordinary_ok.load(Ordering::SeqCst);
    figures.ordinary_refused = counts.ordinary_refused.load(Ordering::SeqCst);
    figures.first_refusal = first_refusal.lock().unwrap().take();
    before.since(api, &mut figures);
    figures
}

/// One of the two managers fighting over the looping object.
struct LoopWriter {
    api: Arc<ApiServer>,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    first_refusal: Arc<std::sync::Mutex<Option<(f64, String)>>>,
    started: Instant,
}

impl LoopWriter {
    /// Applies the object at half of `per_second` until stopped, counting what was refused.
    fn rewrite(self, turn: u64, manager: &'static str, per_second: u64, size: usize) {
        runtime().block_on(async move {
            let period = Duration::from_micros(2_000_000 / per_second);
            let mut tick = tokio::time::interval(period);
            let mut n = 0u64;
            while !self.stop.load(Ordering::SeqCst) {
                tick.tick().await;
                n += 1;
                let fill = char::from(b'a' + ((n * 2 + turn) % 26) as u8);
                let body = serde_json::json!({
                    "apiVersion": "example.com/v1",
                    "kind": "Widget",
                    "metadata": {"name": "looping", "namespace": "default"},
                    "spec": {"blob": fill.to_string().repeat(size), "owner": manager},
                })
                .to_string();
                let path = "/apis/example.com/v1/namespaces/default/widgets/looping";
                match self.api.apply(path, manager, &body).await {
                    Ok(a) if a.ok() => self.counts.loop_ok.fetch_add(1, Ordering::SeqCst),
                    answer => {
                        let why = match answer {
                            Ok(a) => format!("{} {}", a.status, a.message()),
                            Err(e) => e,
                        };
                        let at = self.started.elapsed().as_secs_f64();
                        self.first_refusal.lock().unwrap().get_or_insert((at, why));
                        self.counts.loop_refused.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        })
    }
}

/// An ordinary client applying a small ConfigMap every 200 ms until stopped.
fn ordinary_writer(
    api: Arc<ApiServer>,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                n += 1;
                let body = serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "ordinary", "namespace": "default"},
                    "data": {"n": n.to_string()},
                })
                .to_string();
                let path = "/api/v1/namespaces/default/configmaps/ordinary";
                match api.apply(path, "ordinary-client", &body).await {
                    Ok(a) if a.ok() => counts.ordinary_ok.fetch_add(1, Ordering::SeqCst),
                    _ => counts.ordinary_refused.fetch_add(1, Ordering::SeqCst),
                };
            }
        })
    })
}

/// Every second until `seconds` after `started`: the largest member's db and whether an alarm
/// is raised.
fn sample_etcd(cluster: &Cluster, started: Instant, seconds: u64, figures: &mut LoopFigures) {
    runtime().block_on(async {
        let mut clients = Vec::new();
        for endpoint in cluster.endpoints() {
            clients.push(cluster.client(&[endpoint]).await);
        }
        while started.elapsed() < Duration::from_secs(seconds) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for c in clients.iter_mut() {
                if let Ok(s) = c.status().await {
                    figures.peak_db = figures.peak_db.max(s.db_size().max(0) as u64);
                }
            }
            if let Ok(a) = clients[0]
                .alarm(
                    etcd_client::AlarmAction::Get,
                    etcd_client::AlarmType::None,
                    None,
                )
                .await
                && !a.alarms().is_empty()
            {
                figures.nospace_seconds += 1;
            }
        }
    });
}

impl LoopFigures {
    /// One line for a test's output and the benchmark.
    pub fn line(&self) -> String {
        format!(
            "loop writes accepted {} refused {}; ordinary writes accepted {} refused {}; first refusal {}; db peak {:.1} MiB; NOSPACE raised for {} s; watch-cache initialisations {}; compacted-watch log lines {}; failed consistency checks {} (log), {} of {} (metric)",
            self.loop_ok,
            self.loop_refused,
            self.ordinary_ok,
            self.ordinary_refused,
            self.first_refusal
                .as_ref()
                .map(|(at, why)| format!("at {at:.0} s ({why})"))
                .unwrap_or_else(|| "none".into()),
            self.peak_db as f64 / (1024.0 * 1024.0),
            self.nospace_seconds,
            self.cache_initialisations,
            self.compacted_watch_lines,
            self.consistency_errors,
            self.consistency_checks_not_passed,
            self.consistency_checks
        )
    }
}
