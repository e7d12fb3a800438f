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
use crate::diagnose::history_rate::WriteTotals;
use crate::etcd::AlarmKind;
use crate::observe::{self, ObserveSettings, Snapshot, backoff};
use crate::report::http;
use crate::report::state::Shared;
use crate::shutdown::Shutdown;
use crate::supervisor::Supervisor;

crate::message_error!(
    /// The HTTP address could not be bound (in use, not permitted): a runtime fault (exit 3),
    /// not bad input.
    ListenError
);

pub async fn run(settings: RunSettings) -> Result<(), Box<dyn std::error::Error>> {
    let RunSettings {
        connection,
        engine: cfg,
        listen_address,
        poll_interval,
        churn,
        web,
    } = settings;
    let beside_a_member = cfg.act_when == crate::decide::actor::ActWhen::Leader;
    let data_dir = cfg.data_dir.clone();
    let totals = Arc::new(WriteTotals::default());
    let (top_tx, top) = watch::channel(Arc::new(Vec::new()));
    let mut engine = crate::engine::Engine::new(cfg);
    if churn.is_some() {
        engine = engine.with_churn_watch(totals.clone(), top);
    }
    let shared = Shared::new(poll_interval, connection.command_timeout);
    let shutdown = Shutdown::on_signals();
    let connector = connection.connector();
    let observe_settings = connection.observe.clone();

    let listener = tokio::net::TcpListener::bind(listen_address)
        .await
        .map_err(|e| ListenError(format!("--listen-address {listen_address}: {e}")))?;
    tracing::info!(
        listen = %listen_address,
        endpoints = %observe_settings.endpoints.join(","),
        poll = %humantime::format_duration(poll_interval),
        "etcd-upkeep started"
    );

    let (publish, latest) = watch::channel::<Option<Snapshot>>(None);
    let (me_tx, me) = watch::channel::<Option<i64>>(None);
    let engine = engine.with_identity(me);
    let fault = TestFault::from_env();
    let mut loops = Supervisor::new(shared.clone(), shutdown.clone());
    loops.spawn(
        "observation",
        observation_loop(
            observe_settings.clone(),
            connector,
            poll_interval,
            shared.clone(),
            publish,
            shutdown.clone(),
        ),
    );
    if let Some((prefix, threshold)) = churn {
        let watch = crate::diagnose::watcher::run(
            prefix,
            threshold,
            totals,
            top_tx,
            latest.clone(),
            shared.clone(),
            shutdown.clone(),
        );
        loops.spawn("churn watch", fault.inject("churn", watch));
    }
    loops.spawn(
        "candidacy",
        crate::act::candidacy::run(
            crate::act::candidacy::Publisher::new(beside_a_member, data_dir),
            latest.clone(),
            me_tx,
            shared.clone(),
            shutdown.clone(),
        ),
    );
    let maintain = engine.run(observe_settings, latest, shared.clone(), shutdown.clone());
    loops.spawn("engine", fault.inject("engine", maintain));
    loops.spawn(
        "http",
        http::serve(listener, shared.clone(), web, shutdown.clone()),
    );

    let outcome = loops.wait().await;
    tracing::info!("etcd-upkeep stopped");
    outcome.map_err(|e| e.into())
}

/// A fault only tests set (`ETCD_UPKEEP_TEST_FAULT=engine:3s` or `churn:3s`): that loop ends
/// after the delay, to prove the supervisor notices. Never set in production.
struct TestFault(Option<(String, Duration)>);

impl TestFault {
    fn from_env() -> TestFault {
        TestFault(std::env::var("ETCD_UPKEEP_TEST_FAULT").ok().and_then(|v| {
            let (name, after) = v.split_once(':')?;
            Some((name.to_string(), crate::units::parse_duration(after).ok()?))
        }))
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
                tracing::warn!(consecutive = failures, "observation failed: {error}");
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
