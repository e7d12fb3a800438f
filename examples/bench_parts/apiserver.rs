//! `scripts/bench.sh apiserver`: prevention through etcd's real client (issue 22). A
//! kube-apiserver 1.36.3 in front of 3 etcd members (256 MiB quota, the snippet's
//! auto-compaction flags), one custom object rewritten 20 times a second with 100 KB by two field
//! managers in turn (2 MB/s of history), an ordinary client writing beside it; first with one
//! etcd-upkeep per member on default flags, then without. `BENCH_API_SECONDS` sets each run's
//! length (default 600); `BENCH_API_PROGRESS_NOTIFY=20s` adds the snippet's
//! `--watch-progress-notify-interval` to the members, and `BENCH_API_RUNS=with` runs only the
//! first. Each run also prints the least history the actor kept against the members'
//! progress-notify interval, and how a paginated LIST of 2 000 ConfigMaps (pages of 50, 3 s
//! apart, started a minute into the loop) ended.

use std::sync::Arc;

use crate::support::apiserver::ApiServer;
use crate::support::{Cluster, Daemon, daemon_args};
use crate::support::{api_loop, pages};

const MIB: u64 = 1024 * 1024;

pub fn apiserver() {
    let seconds: u64 = std::env::var("BENCH_API_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let notify = std::env::var("BENCH_API_PROGRESS_NOTIFY")
        .ok()
        .map(|v| format!("--watch-progress-notify-interval={v}"));
    let runs: &[bool] = match std::env::var("BENCH_API_RUNS").as_deref() {
        Ok("with") => &[true],
        _ => &[true, false],
    };
    for &with_upkeep in runs {
        let mut flags = vec![
            "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=30m",
        ];
        flags.extend(notify.as_deref());
        let cluster = Cluster::start_with(3, 256 * MIB, &flags);
        let api = Arc::new(ApiServer::start(&cluster, &[]));
        let daemons: Vec<Daemon> = if with_upkeep {
            cluster
                .endpoints()
                .iter()
                .map(|e| Daemon::start(&daemon_args(&cluster, e, &[]), cluster.dir.path()))
                .collect()
        } else {
            Vec::new()
        };
        api_loop::install_widgets(&api);
        pages::create_configmaps(&api, 2_000);
        // Meanwhile: the history the actor keeps against the interval, and a paginated LIST
        // (pages of 50, 3 s apart) a minute into the loop.
        let kept = std::sync::Mutex::new(KeptHistory::default());
        let done = std::sync::atomic::AtomicBool::new(false);
        let (figures, walk) = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    kept.lock().unwrap().sample(&daemons);
                    std::thread::sleep(std::time::Duration::from_secs(2));
                }
            });
            let walker = scope.spawn(|| {
                std::thread::sleep(std::time::Duration::from_secs(60));
                pages::walk(
                    &api,
                    "/api/v1/namespaces/default/configmaps",
                    50,
                    std::time::Duration::from_secs(3),
                )
            });
            let figures = api_loop::run(&api, &cluster, seconds, 20, 100_000);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            (figures, walker.join().unwrap())
        });
        let kept = kept.into_inner().unwrap();
        let label = if with_upkeep {
            "with etcd-upkeep (one per member, default flags)"
        } else {
            "without etcd-upkeep (etcd's auto-compaction, 30m)"
        };
        println!(
            "{seconds} s of a 2 MB/s loop through kube-apiserver 1.36.3, 3 members, 256 MiB quota, {label}{}: {}",
            notify
                .as_deref()
                .map(|f| format!(", members with {f}"))
                .unwrap_or_default(),
            figures.line()
        );
        println!(
            "  peak {:.0} % of the quota; {}; a paginated LIST of 2 000 ConfigMaps a minute in: {}",
            figures.peak_db as f64 * 100.0 / (256 * MIB) as f64,
            kept.line(),
            walk.line()
        );
        drop(daemons);
    }
}

/// The least history the actor kept over the run, and the progress-notify interval it knew at
/// the end (the ratio is taken against that one: before a measurement the interval is assumed).
#[derive(Default)]
struct KeptHistory {
    least_seconds: Option<f64>,
    interval: Option<(f64, String)>,
}

impl KeptHistory {
    fn sample(&mut self, daemons: &[Daemon]) {
        let Some(actor) = daemons
            .iter()
            .find(|d| d.metric("etcd_upkeep_is_actor") == Some(1.0))
        else {
            return;
        };
        if let Some(kept) = actor.metric("etcd_upkeep_history_retention_seconds") {
            self.least_seconds = Some(self.least_seconds.map_or(kept, |l| l.min(kept)));
        }
        let status = actor.status_json();
        if let Some(seconds) = status["watch_progress"]["seconds"].as_f64() {
            let source = status["watch_progress"]["source"].as_str().unwrap_or("?");
            self.interval = Some((seconds, source.to_string()));
        }
    }

    fn line(&self) -> String {
        match (self.least_seconds, &self.interval) {
            (Some(kept), Some((interval, source))) => format!(
                "least history kept {kept:.0} s, {:.2}× the progress-notify interval {interval:.1} s ({source})",
                kept / interval
            ),
            _ => "no history kept measured (no etcd-upkeep)".into(),
        }
    }
}
