//! Prevention under the real client: a 2 MB/s loop through the API, default flags.

use super::*;
use crate::support::{Cluster, daemon_args};
use support::api_loop;

/// Seconds the prevention loop runs (`APISERVER_LOOP_SECONDS`; `scripts/bench.sh apiserver` runs
/// it for 10 minutes). Three minutes by default: without etcd-upkeep, the loop below reaches
/// NOSPACE in about two (measured: 117 s), and the apiserver's own compaction, every 5 minutes,
/// comes too late to stop it.
fn loop_seconds() -> u64 {
    seconds_from_env("APISERVER_LOOP_SECONDS", 180)
}

#[test]
fn a_2_mb_per_second_loop_through_the_api_is_held_below_the_quota_and_no_write_fails() {
    let quota = 256 * MIB;
    let cluster = Cluster::start(1, quota);
    let endpoint = cluster.endpoints()[0].clone();
    let api = Arc::new(ApiServer::start(&cluster, &[]));
    // Default flags: what a user gets from the snippet.
    let daemon = Daemon::start(&daemon_args(&cluster, &endpoint, &[]), cluster.dir.path());
    api_loop::install_widgets(&api);
    // 20 rewrites a second of 100 KB: 2 MB/s of history. Meanwhile: what the daemon says of
    // the history it keeps against etcd's default 10-minute progress notifications.
    let sampled = std::sync::Mutex::new(Sampled::default());
    let done = AtomicBool::new(false);
    let figures = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                sampled.lock().unwrap().sample(&daemon);
                std::thread::sleep(Duration::from_secs(2));
            }
        });
        let figures = api_loop::run(&api, &cluster, loop_seconds(), 20, 100_000);
        done.store(true, Ordering::SeqCst);
        figures
    });
    let sampled = sampled.into_inner().unwrap();
    eprintln!(
        "with etcd-upkeep (default flags): {}; kept history over the progress-notify interval at least {:.2}",
        figures.line(),
        sampled.least_ratio
    );
    let log = daemon.log();
    assert_eq!(figures.nospace_seconds, 0, "NOSPACE: {log}");
    assert!(!log.contains("NOSPACE alarm raised"), "{log}");
    assert_eq!(figures.ordinary_refused, 0, "{}", figures.line());
    assert_eq!(figures.loop_refused, 0, "{}", figures.line());
    assert!(
        figures.loop_ok >= loop_seconds() * 20 * 8 / 10,
        "the loop really ran: {}",
        figures.line()
    );
    assert!(figures.peak_db <= quota * 9 / 10, "{}", figures.line());
    // The looping object is named.
    assert!(
        log.contains("the history comes from a sync loop")
            && log.contains("/registry/example.com/widgets/default/looping"),
        "{log}"
    );
    // The history kept fell below etcd's 10-minute notifications, and the daemon said which
    // etcd flag to set, spelled for 3.6, with a value under the history it keeps.
    assert!(sampled.least_ratio < 1.0, "{}", sampled.least_ratio);
    let advice = sampled.advice.expect("/status advised while below");
    assert!(
        advice.contains("below the members' watch progress-notify interval 10m")
            && advice.contains("Set --watch-progress-notify-interval=20s on every etcd member"),
        "{advice}"
    );
    assert_eq!(
        log.matches("is below the members' watch progress-notify interval")
            .count(),
        1,
        "said once: {log}"
    );
}

/// What the sampler saw of the daemon during the loop.
#[derive(Default)]
struct Sampled {
    least_ratio: f64,
    advice: Option<String>,
    samples: usize,
}

impl Sampled {
    fn sample(&mut self, daemon: &Daemon) {
        let ratio = daemon.metric("etcd_upkeep_history_kept_over_watch_progress_interval_ratio");
        if let Some(ratio) = ratio {
            self.least_ratio = if self.samples == 0 {
                ratio
            } else {
                self.least_ratio.min(ratio)
            };
            self.samples += 1;
        }
        let status = daemon.status_json();
        if let Some(advice) = status["space"]["watch_history"]["advice"].as_str() {
            self.advice = Some(advice.to_string());
        }
    }
}
