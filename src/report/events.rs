//! Kubernetes Events about etcd-upkeep's own pod (`--kubernetes-events`): platform engineers
//! read `kubectl describe pod` and `kubectl get events` on the host cluster before a dashboard.
//!
//! The engine and the churn watch call [`EventSink::record`], which never waits: it hands the
//! note to a task over a bounded channel and drops it when the channel is full (counted in
//! `etcd_upkeep_kubernetes_events_total{outcome="dropped"}`). An API that is slow or down can
//! therefore never slow a heal. The task does what client-go's recorder does:
//! - **aggregates** a repeat (the same reason about the same thing: an object, a member, a
//!   refusal's wording without its figures) into the Event already made: its `count`,
//!   `lastTimestamp` and message are patched;
//! - **rate-limits** per reason (a burst of 10, then one every 5 minutes), so a flapping
//!   condition cannot flood the API;
//! - involves the pod named by the downward API (`POD_NAME`, `POD_NAMESPACE`, `POD_UID`), the
//!   object `kubectl describe pod` lists Events for.

use std::collections::HashMap;
use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::kube::{KubeApi, KubeError};
use crate::shutdown::Shutdown;

/// Why an Event is recorded: its `reason` and `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventReason {
    NospaceHealed,
    HealBlocked,
    SyncLoopSuspected,
    LiveDataOverTarget,
    IntegrityMismatch,
}

impl EventReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::NospaceHealed => "NospaceHealed",
            EventReason::HealBlocked => "HealBlocked",
            EventReason::SyncLoopSuspected => "SyncLoopSuspected",
            EventReason::LiveDataOverTarget => "LiveDataOverTarget",
            EventReason::IntegrityMismatch => "IntegrityMismatch",
        }
    }

    /// `Normal` for what went well, `Warning` for what someone must look at.
    pub fn kind(self) -> &'static str {
        match self {
            EventReason::NospaceHealed => "Normal",
            _ => "Warning",
        }
    }
}

/// The pod the Events are about (from the downward API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub namespace: String,
    /// `kubectl describe pod` selects Events by the pod's uid as well; without it they show in
    /// `kubectl get events` only.
    pub uid: Option<String>,
}

struct Note {
    reason: EventReason,
    about: String,
    message: String,
}

/// Where the daemon's components record Events; a no-op when `--kubernetes-events` is off.
#[derive(Clone, Default)]
pub struct EventSink {
    sender: Option<mpsc::Sender<Note>>,
    dropped: Option<prometheus_client::metrics::counter::Counter>,
}

/// Notes waiting for the API at most; more are dropped (the API is down or slow).
const QUEUE: usize = 64;

impl EventSink {
    /// Records an Event about `about` (what repeats aggregate by), never waiting.
    pub fn record(&self, reason: EventReason, about: &str, message: String) {
        let Some(sender) = &self.sender else { return };
        let note = Note {
            reason,
            about: about.to_string(),
            message,
        };
        if sender.try_send(note).is_err()
            && let Some(dropped) = &self.dropped
        {
            dropped.inc();
        }
    }
}

/// What to do with a note, decided without I/O (unit-tested below).
#[derive(Debug, PartialEq)]
pub enum Emit {
    /// A new Event named `name`.
    Create { name: String },
    /// The Event `name` again: its count is now `count`.
    Patch { name: String, count: u64 },
    /// Over the reason's rate: not sent.
    Limited,
}

/// A burst of this many Events per reason, then one per `REFILL_SECONDS`.
const BURST: f64 = 10.0;
const REFILL_SECONDS: f64 = 300.0;
/// A repeat older than this makes a new Event (the API keeps Events for an hour by default).
const AGGREGATE_SECONDS: f64 = 1800.0;

struct Made {
    name: String,
    count: u64,
    last: f64,
}

/// Aggregation and rate limiting, as client-go's EventCorrelator does them.
#[derive(Default)]
pub struct Correlator {
    made: HashMap<(EventReason, String), Made>,
    /// Per reason: (tokens, when counted).
    buckets: HashMap<EventReason, (f64, f64)>,
    serial: u64,
}

impl Correlator {
    pub fn note(&mut self, pod: &str, reason: EventReason, about: &str, now: f64) -> Emit {
        let (tokens, at) = self.buckets.entry(reason).or_insert((BURST, now));
        *tokens = (*tokens + (now - *at).max(0.0) / REFILL_SECONDS).min(BURST);
        *at = now;
        if *tokens < 1.0 {
            return Emit::Limited;
        }
        *tokens -= 1.0;
        self.made.retain(|_, m| now - m.last < AGGREGATE_SECONDS);
        let key = (reason, about.to_string());
        if let Some(made) = self.made.get_mut(&key) {
            made.count += 1;
            made.last = now;
            return Emit::Patch {
                name: made.name.clone(),
                count: made.count,
            };
        }
        self.serial += 1;
        // As client-go names them: the object's name and a unique suffix.
        let name = format!("{pod}.{:x}{:04x}", (now * 1e3) as u64, self.serial);
        self.made.insert(
            key,
            Made {
                name: name.clone(),
                count: 1,
                last: now,
            },
        );
        Emit::Create { name }
    }

    /// Forgets an Event the API no longer has (expired): the next repeat creates it again.
    pub fn forget(&mut self, name: &str) {
        self.made.retain(|_, m| m.name != name);
    }
}

/// Starts the recorder; the returned sink is handed to every component.
pub fn start(
    api: KubeApi,
    pod: PodRef,
    metrics: &crate::report::metrics::Metrics,
    shutdown: Shutdown,
) -> EventSink {
    let (sender, receiver) = mpsc::channel(QUEUE);
    let outcomes = metrics.kubernetes_events.clone();
    tokio::spawn(recorder(api, pod, receiver, outcomes, shutdown));
    EventSink {
        sender: Some(sender),
        dropped: Some(
            metrics
                .kubernetes_events
                .get_or_create(&crate::report::metrics::OutcomeLabel {
                    outcome: "dropped".into(),
                })
                .clone(),
        ),
    }
}

type Outcomes = prometheus_client::metrics::family::Family<
    crate::report::metrics::OutcomeLabel,
    prometheus_client::metrics::counter::Counter,
>;

async fn recorder(
    api: KubeApi,
    pod: PodRef,
    mut notes: mpsc::Receiver<Note>,
    outcomes: Outcomes,
    mut shutdown: Shutdown,
) {
    let mut correlator = Correlator::default();
    let count = |outcome: &str| {
        outcomes
            .get_or_create(&crate::report::metrics::OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    };
    let mut said_failure = false;
    loop {
        let note = tokio::select! {
            note = notes.recv() => match note { Some(n) => n, None => return },
            _ = shutdown.requested() => return,
        };
        let now = unix_now();
        let message = truncate(&note.message, 1024);
        let emit = correlator.note(&pod.name, note.reason, &note.about, now);
        let sent = match &emit {
            Emit::Limited => {
                count("limited");
                continue;
            }
            Emit::Create { name } => create(&api, &pod, name, note.reason, &message).await,
            Emit::Patch { name, count } => {
                match patch(&api, &pod, name, *count, &message).await {
                    // Expired (or deleted) meanwhile: made again, with a count of one.
                    Err(e @ KubeError::Refused { status: 404, .. }) => {
                        correlator.forget(name);
                        match correlator.note(&pod.name, note.reason, &note.about, now) {
                            Emit::Create { name } => {
                                create(&api, &pod, &name, note.reason, &message).await
                            }
                            _ => Err(e),
                        }
                    }
                    other => other,
                }
            }
        };
        match sent {
            Ok(()) => {
                count("recorded");
                if said_failure {
                    tracing::info!("Kubernetes Events are recorded again");
                    said_failure = false;
                }
            }
            Err(e) => {
                count("failed");
                // Once per outage, not per Event: the daemon's own log is where this is read.
                if !said_failure {
                    tracing::warn!(
                        "a Kubernetes Event was not recorded ({e}); maintenance goes on without them"
                    );
                    said_failure = true;
                }
            }
        }
    }
}

async fn create(
    api: &KubeApi,
    pod: &PodRef,
    name: &str,
    reason: EventReason,
    message: &str,
) -> Result<(), KubeError> {
    let now = rfc3339_now();
    let mut involved = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "name": pod.name,
        "namespace": pod.namespace,
    });
    if let Some(uid) = &pod.uid {
        involved["uid"] = uid.clone().into();
    }
    let event = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": pod.namespace},
        "involvedObject": involved,
        "reason": reason.as_str(),
        "message": message,
        "type": reason.kind(),
        "source": {"component": "etcd-upkeep"},
        "reportingComponent": "etcd-upkeep",
        "reportingInstance": pod.name,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    let path = format!("/api/v1/namespaces/{}/events", pod.namespace);
    let answer = api
        .send(
            "POST",
            &path,
            "application/json",
            event.to_string().into_bytes(),
        )
        .await?;
    answer.accepted(&path)
}

async fn patch(
    api: &KubeApi,
    pod: &PodRef,
    name: &str,
    count: u64,
    message: &str,
) -> Result<(), KubeError> {
    let change = serde_json::json!({
        "count": count,
        "lastTimestamp": rfc3339_now(),
        "message": message,
    });
    let path = format!("/api/v1/namespaces/{}/events/{name}", pod.namespace);
    let answer = api
        .send(
            "PATCH",
            &path,
            "application/merge-patch+json",
            change.to_string().into_bytes(),
        )
        .await?;
    answer.accepted(&path)
}

fn truncate(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_string();
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
