//! `etcd-upkeep run`: the observation loop, the maintenance engine and the HTTP server, wired
//! together and stopped together.
//!
//! Why two loops: a defragmentation may block the engine for minutes; observations (and so
//! metrics and readiness) must keep flowing meanwhile. The observation loop publishes each
//! [`Observation`] with the connection it was made on; the engine consumes the latest one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::RunSettings;
use crate::connect::Connector;
use crate::decide::watch_history::ProgressInterval;
use crate::diagnose::churn::ChurnEntry;
use crate::diagnose::history_rate::WriteTotals;
use crate::etcd::AlarmKind;
use crate::observe::{self, ObserveSettings, Snapshot, backoff};
use crate::report::http;
use crate::report::state::Shared;
use crate::shutdown::Shutdown;
use crate::supervisor::Supervisor;

/// Why the daemon stopped on its own, and the exit code each reason means (`main` maps it).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The HTTP address could not be bound (in use, not permitted): a runtime fault, not bad
    /// input.
    #[error("--listen-address {address}: {source}")]
    Listen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// One of its loops ended or panicked (the supervisor stops the others and says which).
    #[error(transparent)]
    LoopEnded(#[from] crate::supervisor::LoopEnded),
}

impl DaemonError {
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Listen { .. } => 3,
            DaemonError::LoopEnded(_) => 1,
        }
    }
}

pub async fn run(settings: RunSettings) -> Result<(), DaemonError> {
    let RunSettings {
        connection,
        engine: cfg,
        listen_address,
        poll_interval,
        churn,
        web,
        events,
        progress_notify_interval,
    } = settings;
    let shared = Shared::new(poll_interval, connection.command_timeout);
    let shutdown = Shutdown::on_signals();
    if let Some(events) = events {
        record_events(events, &shared, &shutdown);
    }
    let observe_settings = connection.observe.clone();
    let listener = bind(listen_address).await?;
    tracing::info!(
        listen = %listen_address,
        endpoints = %observe_settings.endpoints.join(","),
        poll = %humantime::format_duration(poll_interval),
        "etcd-upkeep started"
    );

    let (publish, latest) = watch::channel::<Option<Snapshot>>(None);
    let wiring = Wiring {
        latest,
        shared: shared.clone(),
        shutdown: shutdown.clone(),
    };
    let fault = TestFault::from_env();
    let mut loops = Supervisor::new(shared.clone(), shutdown.clone());
    loops.spawn(
        "observation",
        observation_loop(
            observe_settings.clone(),
            connection.connector(),
            poll_interval,
            shared.clone(),
            publish,
            shutdown.clone(),
        ),
    );
    let beside_a_member = cfg.act_when == crate::decide::actor::ActWhen::Leader;
    let publisher = crate::act::candidacy::Publisher::new(beside_a_member, cfg.data_dir.clone());
    let (me_tx, me) = watch::channel::<Option<i64>>(None);
    let w = wiring.clone();
    let candidacy = crate::act::candidacy::run(publisher, w.latest, me_tx, w.shared, w.shutdown);
    loops.spawn("candidacy", candidacy);
    let mut engine = crate::engine::Engine::new(cfg)
        .with_identity(me)
        .with_progress_notify(spawn_progress_watch(
            &mut loops,
            &wiring,
            progress_notify_interval,
        ));
    if let Some(churn) = churn {
        let (totals, top) = spawn_churn_watch(&mut loops, &wiring, &fault, churn);
        engine = engine.with_churn_watch(totals, top);
    }
    let maintain = engine.run(
        observe_settings,
        wiring.latest,
        shared.clone(),
        shutdown.clone(),
    );
    loops.spawn("engine", fault.inject("engine", maintain));
    loops.spawn("http", http::serve(listener, shared, web, shutdown));

    let outcome = loops.wait().await;
    tracing::info!("etcd-upkeep stopped");
    Ok(outcome?)
}

/// What every loop but the observation loop is handed: the latest observation, the report
/// state and shutdown.
#[derive(Clone)]
struct Wiring {
    latest: watch::Receiver<Option<Snapshot>>,
    shared: Arc<Shared>,
    shutdown: Shutdown,
}

/// `--kubernetes-events`: Events on this pod, from a sink of their own (never in a loop's way).
fn record_events(events: crate::config::EventsSettings, shared: &Shared, shutdown: &Shutdown) {
    tracing::info!(
        "recording Kubernetes Events on pod {}/{} through {}",
        events.pod.namespace,
        events.pod.name,
        events.api.address()
    );
    let sink =
        crate::report::events::start(events.api, events.pod, &shared.metrics, shutdown.clone());
    let _ = shared.events.set(sink);
}

/// The members' progress-notify interval: as given, or measured by a watch of our own (then
/// spawned here). Returns where the engine reads it.
fn spawn_progress_watch(
    loops: &mut Supervisor,
    wiring: &Wiring,
    given: Option<Duration>,
) -> watch::Receiver<ProgressInterval> {
    let initial = given.map_or_else(ProgressInterval::assumed, ProgressInterval::given);
    let (interval_tx, interval) = watch::channel(initial);
    crate::observe::progress_notify::share(&interval_tx, &wiring.shared, initial);
    if given.is_none() {
        let w = wiring.clone();
        let measure =
            crate::observe::progress_notify::run(interval_tx, w.latest, w.shared, w.shutdown);
        loops.spawn("progress-notify watch", measure);
    }
    interval
}

/// The churn (sync-loop) watch on `(prefix, threshold per minute)`. Returns what it publishes
/// for the engine: the bytes it counted and its top list.
fn spawn_churn_watch(
    loops: &mut Supervisor,
    wiring: &Wiring,
    fault: &TestFault,
    (prefix, threshold): (String, f64),
) -> (Arc<WriteTotals>, watch::Receiver<Arc<Vec<ChurnEntry>>>) {
    let totals = Arc::new(WriteTotals::default());
    let (top_tx, top) = watch::channel(Arc::new(Vec::new()));
    let w = wiring.clone();
    let watch = crate::diagnose::watcher::run(
        prefix,
        threshold,
        totals.clone(),
        top_tx,
        w.latest,
        w.shared,
        w.shutdown,
    );
    loops.spawn("churn watch", fault.inject("churn", watch));
    (totals, top)
}

/// The HTTP listener, before any loop starts: a port in use is exit 3 at once, not a loop that
/// dies later.
async fn bind(address: std::net::SocketAddr) -> Result<tokio::net::TcpListener, DaemonError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| DaemonError::Listen { address, source })
}

/// A fault only the supervision tests set (`ETCD_UPKEEP_TEST_FAULT=engine:3s` or `churn:3s`):
/// that loop ends after the delay, to prove the supervisor notices. Read by debug builds only
/// (the tests'): a release build, the image's, is compiled without the read and never looks at
/// the variable (scripts/dockerfile-build.sh checks that the name is not in the binary).
struct TestFault(Option<(String, Duration)>);

impl TestFault {
    #[cfg(debug_assertions)]
    fn from_env() -> TestFault {
        TestFault(std::env::var("ETCD_UPKEEP_TEST_FAULT").ok().and_then(|v| {
            let (name, after) = v.split_once(':')?;
            Some((name.to_string(), crate::units::parse_duration(after).ok()?))
        }))
    }

    #[cfg(not(debug_assertions))]
    fn from_env() -> TestFault {
        TestFault(None)
    }

    fn inject(
        &self,
        name: &str,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        match &self.0 {
            Some((faulty, after)) if faulty == name => {
                let after = *after;
                tracing::warn!("test fault: the {name} loop ends after {after:?}");
                Box::pin(async move {
                    tokio::select! {
                        _ = task => {},
                        _ = tokio::time::sleep(after) => {},
                    }
                })
            }
            _ => Box::pin(task),
        }
    }
}

/// One line per new cause of a failed observation (and a reminder every 10th failure), not one
/// per poll: a refused certificate fails the same way until someone fixes it.
fn say_failure(shared: &Shared, failures: u32, error: &str) {
    let repeated = shared.read().last_error.as_deref() == Some(error);
    if !repeated || failures.is_multiple_of(10) {
        tracing::warn!(consecutive = failures, "observation failed: {error}");
    } else {
        tracing::debug!(consecutive = failures, "observation failed: {error}");
    }
}

async fn observation_loop(
    settings: ObserveSettings,
    mut connector: Connector,
    poll: Duration,
    shared: Arc<Shared>,
    publish: watch::Sender<Option<Snapshot>>,
    mut shutdown: Shutdown,
) {
    let mut failures: u32 = 0;
    // The alarm listing that last cut a wait short: not again for the same one.
    let mut woke_for: Option<Vec<AlarmKind>> = None;
    loop {
        let started = Instant::now();
        let result = match connector.etcd() {
            Err(e) => Err(format!("waiting for certificates: {e}")),
            Ok(etcd) => {
                let previous = publish.borrow().as_ref().map(|s| s.observation.clone());
                match observe::observe(&etcd, &settings, previous.as_deref()).await {
                    Ok(observation) => Ok((etcd, observation)),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        let ok = result.is_ok();
        match result {
            Ok((etcd, observation)) => {
                if failures > 0 {
                    tracing::info!(after_failures = failures, "etcd observed again");
                }
                failures = 0;
                for warning in &observation.warnings {
                    tracing::warn!("{warning}");
                }
                shared.metrics.record_observation(&observation);
                let observation = Arc::new(observation);
                {
                    let mut state = shared.write();
                    state.observation = Some(observation.clone());
                    state.last_success = Some(Instant::now());
                    state.last_error = None;
                    state.heartbeat = Instant::now();
                }
                let _ = publish.send(Some(Snapshot { etcd, observation }));
            }
            Err(error) => {
                failures += 1;
                shared.metrics.observation_errors.inc();
                say_failure(&shared, failures, &error);
                let mut state = shared.write();
                state.last_error = Some(error);
                state.heartbeat = Instant::now();
            }
        }
        shared.metrics.ready.set(i64::from(shared.is_ready()));
        // Back off while etcd is unreachable (up to 8 polls), poll steadily while it answers.
        let wait = if ok { poll } else { backoff(poll, failures) };
        let wait = wait.saturating_sub(started.elapsed().min(wait));
        let last = publish.borrow().clone();
        match last.filter(|_| ok) {
            Some(snapshot) => {
                let check = AlarmCheck {
                    snapshot: &snapshot,
                    endpoint: &settings.endpoints[0],
                };
                if check.until(wait, &mut woke_for, &mut shutdown).await {
                    return;
                }
            }
            None => {
                if shutdown.sleep(wait).await {
                    return;
                }
            }
        }
    }
}

/// Between observations, the local member's Status is read this often for an alarm the last
/// observation did not show: NOSPACE is acted on within about a second whatever the poll.
const ALARM_CHECK_EVERY: Duration = Duration::from_millis(400);

/// The quick alarm check against the local member, between two observations.
struct AlarmCheck<'a> {
    snapshot: &'a Snapshot,
    endpoint: &'a str,
}

impl AlarmCheck<'_> {
    /// Sleeps `wait`, checking every [`ALARM_CHECK_EVERY`] whether the alarms differ from the
    /// last observation's; returns early when they do (false), or true on shutdown. A listing
    /// that already cut one wait short does not cut the next (the observation disagreed with
    /// it: no busy loop). A check that fails or is slow only ends the checking.
    async fn until(
        &self,
        wait: Duration,
        woke_for: &mut Option<Vec<AlarmKind>>,
        shutdown: &mut Shutdown,
    ) -> bool {
        let deadline = Instant::now() + wait;
        let mut known: Vec<AlarmKind> = self
            .snapshot
            .observation
            .alarms
            .iter()
            .map(|a| a.kind)
            .collect();
        known.sort_by_key(|k| k.as_str());
        known.dedup();
        if woke_for.as_ref() == Some(&known) {
            *woke_for = None; // the observation agrees now
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if shutdown.sleep(left.min(ALARM_CHECK_EVERY)).await {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            let listed = self
                .snapshot
                .etcd
                .status_within(self.endpoint, ALARM_CHECK_EVERY * 2)
                .await
                .map(|s| s.listed_alarms());
            match listed {
                Ok(listed) if listed != known && woke_for.as_ref() != Some(&listed) => {
                    tracing::debug!(alarms = ?listed, "alarms changed; observing now");
                    *woke_for = Some(listed);
                    return false;
                }
                Ok(_) => {}
                Err(_) => {
                    let rest = deadline.saturating_duration_since(Instant::now());
                    return shutdown.sleep(rest).await;
                }
            }
        }
    }
}
