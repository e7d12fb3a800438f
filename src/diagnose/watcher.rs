//! The daemon's churn watch: a Watch on `--churn-prefix` feeding the [`ChurnDetector`], the top
//! keys published to metrics and /status every few seconds, and a warning naming each suspected
//! sync loop.
//!
//! Why it restarts from "now": a watch that starts at the current revision can never hit a
//! compacted revision, so compactions (ours, the apiserver's) never stop the detector; when etcd
//! ends the stream (member restart, slow-watcher cancel, compaction of a lagging watch) the
//! watch is simply re-created, with back-off while etcd is unreachable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::mono_now;
use crate::diagnose::churn::{ChurnDetector, ChurnEntry};
use crate::diagnose::fields::{FieldTracker, describe};
use crate::diagnose::history_rate::WriteTotals;
use crate::etcd::{WatchMessage, WatchSubscription};
use crate::observe::{Snapshot, backoff, next_snapshot};
use crate::report::events::EventReason;
use crate::report::metrics::ChurnLabel;
use crate::report::state::Shared;
use crate::shutdown::Shutdown;
use crate::units::format_bytes;

/// Counters per 10-second bucket; a loop writing ≥ 1/s is never evicted by background noise.
const SKETCH_CAPACITY: usize = 256;
const PUBLISH_EVERY: Duration = Duration::from_secs(5);
const TOP: usize = 10;
/// Warn again about the same looping key at most this often.
const REWARN_SECONDS: f64 = 600.0;

pub async fn run(
    prefix: String,
    threshold_per_minute: f64,
    totals: Arc<WriteTotals>,
    top: watch::Sender<Arc<Vec<ChurnEntry>>>,
    mut latest: watch::Receiver<Option<Snapshot>>,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
) {
    let mut watch = Watch {
        detector: ChurnDetector::new(SKETCH_CAPACITY, threshold_per_minute),
        report: Report {
            hot: HashSet::new(),
            fields: FieldTracker::default(),
            warned: HashMap::new(),
            top,
        },
        totals,
        shared,
    };
    let mut failures = 0u32;
    let poll = watch.shared.poll_interval;
    while let Some(snapshot) = next_snapshot(&mut latest, &mut shutdown).await {
        let Some(endpoint) = crate::decide::endpoints::local_endpoint(&snapshot.observation) else {
            if shutdown.sleep(poll).await {
                return;
            }
            continue;
        };
        let mut subscription = match snapshot.etcd.watch_prefix(&endpoint, &prefix, 0).await {
            Ok(s) => s,
            Err(e) => {
                failures += 1;
                tracing::warn!("churn watch could not start: {e}");
                if shutdown.sleep(backoff(poll, failures)).await {
                    return;
                }
                continue;
            }
        };
        if failures > 0 {
            tracing::info!("churn watch on {prefix} running again");
        } else {
            tracing::info!(prefix = %prefix, endpoint = %endpoint, "churn watch started");
        }
        failures = 0;
        watch.totals.started();
        match watch.follow(&mut subscription, &mut shutdown).await {
            Ended::Shutdown => return,
            Ended::Restart { failed } => failures += u32::from(failed),
        }
        let pause = backoff(poll, failures.max(1)).min(Duration::from_secs(2));
        if shutdown.sleep(pause).await {
            return;
        }
    }
}

/// How following one watch stream ended.
enum Ended {
    Shutdown,
    /// Start a new watch from the current revision (`failed`: after an error, back off).
    Restart {
        failed: bool,
    },
}

/// The detector, its report, and where it publishes.
struct Watch {
    detector: ChurnDetector,
    report: Report,
    totals: Arc<WriteTotals>,
    shared: Arc<Shared>,
}

impl Watch {
    /// Counts every event of the stream and publishes every few seconds, until the stream ends.
    async fn follow(
        &mut self,
        subscription: &mut WatchSubscription,
        shutdown: &mut Shutdown,
    ) -> Ended {
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        loop {
            // Values are kept only for the keys already ranked hot (their fields are compared).
            let hot = &self.report.hot;
            let step = tokio::select! {
                message = subscription.next_keeping(|k| hot.contains(k)) => Some(message),
                _ = publish.tick() => None,
                _ = shutdown.requested() => return Ended::Shutdown,
            };
            let Some(message) = step else {
                self.report.publish(&self.detector, &self.shared);
                continue;
            };
            match message {
                Ok(Some(WatchMessage::Events(events))) => self.count(events),
                Ok(Some(WatchMessage::Created | WatchMessage::Progress { .. })) => {}
                Ok(Some(WatchMessage::Compacted { compact_revision })) => {
                    tracing::info!(
                        compact_revision,
                        "churn watch fell behind a compaction; restarting from the current revision"
                    );
                    return Ended::Restart { failed: false };
                }
                Ok(Some(WatchMessage::Canceled(reason))) => {
                    tracing::info!("churn watch ended by etcd ({reason}); restarting");
                    return Ended::Restart { failed: false };
                }
                Ok(None) => {
                    tracing::info!("churn watch stream closed; restarting");
                    return Ended::Restart { failed: false };
                }
                Err(e) => {
                    tracing::warn!("churn watch failed: {e}; restarting");
                    return Ended::Restart { failed: true };
                }
            }
        }
    }

    /// One watch response: churn per key, history vs live bytes, hot keys' fields.
    fn count(&mut self, events: Vec<crate::etcd::WatchEvent>) {
        let now = mono_now();
        self.shared.metrics.watch_events.inc_by(events.len() as u64);
        let (mut superseded, mut created) = (0, 0);
        for event in events {
            if event.is_create {
                created += event.bytes;
            } else {
                superseded += event.bytes;
            }
            self.detector.record(&event.key, event.bytes, now);
            if let Some(value) = &event.value {
                self.report.fields.record(&event.key, value);
            }
        }
        self.totals.add(superseded, created);
    }
}

/// What the churn watch publishes, and what it remembers between publications.
struct Report {
    /// The keys ranked in the last top list: their values are decoded.
    hot: HashSet<String>,
    fields: FieldTracker,
    /// When each looping key was last warned about, and whether that warning named its fields.
    warned: HashMap<String, (f64, bool)>,
    /// Where the last minute's top list is published for the engine.
    top: watch::Sender<Arc<Vec<ChurnEntry>>>,
}

impl Report {
    fn publish(&mut self, detector: &ChurnDetector, shared: &Shared) {
        let now = mono_now();
        let mut last_minute = detector.top(now, 60.0, TOP);
        let mut last_ten = detector.top(now, 600.0, TOP);
        for entry in last_minute.iter_mut().chain(last_ten.iter_mut()) {
            (entry.changed_fields, entry.writers) = self.fields.report(&entry.key, 5);
        }
        let metrics = &shared.metrics;
        metrics.churn_writes_per_minute.clear();
        for entry in &last_minute {
            metrics
                .churn_writes_per_minute
                .get_or_create(&ChurnLabel {
                    resource: entry.resource.clone(),
                    key: entry.key.clone(),
                })
                .set(entry.writes_per_minute);
        }
        let loops: Vec<&ChurnEntry> = last_minute.iter().filter(|e| e.sync_loop).collect();
        metrics.sync_loops.set(loops.len() as i64);
        for entry in &loops {
            // Warn at once; what flips and who writes it is known a publication or two later
            // (the key's values are decoded once it ranks hot): then warn again, with it.
            let described = describe(&entry.changed_fields, &entry.writers);
            if self
                .warned
                .get(&entry.key)
                .is_some_and(|(at, with_fields)| {
                    now - at < REWARN_SECONDS && (*with_fields || described.is_none())
                })
            {
                continue;
            }
            self.warned
                .insert(entry.key.clone(), (now, described.is_some()));
            let fields = described.map(|d| format!("; {d}")).unwrap_or_default();
            // One wording for the log and the Event.
            let message = format!(
                "sync loop suspected: {} ({}) is rewritten {:.0} times a minute ({}/min of new history){fields}; likely synced by {}",
                entry.key,
                entry.resource,
                entry.writes_per_minute,
                format_bytes(entry.bytes_per_minute as u64),
                entry
                    .vcluster_hint
                    .as_deref()
                    .unwrap_or("an unknown controller")
            );
            tracing::warn!(
                key = %entry.key, resource = %entry.resource, writes_per_minute = entry.writes_per_minute,
                bytes_per_minute = entry.bytes_per_minute,
                changed_fields = ?entry.changed_fields.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
                writers = ?entry.writers.iter().map(|w| w.manager.as_str()).collect::<Vec<_>>(),
                "{message}"
            );
            shared.event(EventReason::SyncLoopSuspected, &entry.key, message);
        }
        self.warned
            .retain(|_, (at, _)| now - *at < REWARN_SECONDS * 2.0);
        self.hot = last_minute.iter().map(|e| e.key.clone()).collect();
        let hot = &self.hot;
        self.fields.retain(|k| hot.contains(k));
        {
            let mut state = shared.write();
            state.churn_last_minute = serde_json::to_value(&last_minute).unwrap_or_default();
            state.churn_last_ten_minutes = serde_json::to_value(&last_ten).unwrap_or_default();
        }
        // The engine reads the loops from here (not from the report): it names them when it
        // shrinks the history they write.
        let _ = self.top.send(Arc::new(last_minute));
    }
}
