//! Every loop of the daemon is supervised: none may end or panic while `/healthz` says 200.
//!
//! Why: a sidecar whose engine died but whose HTTP server still answers is the worst kind of
//! broken — it looks healthy and maintains nothing. So each loop runs as a named task in one
//! `JoinSet`; when one ends outside a shutdown (returns, panics), the daemon records which and
//! why (`/healthz` turns 503 naming it), asks the others to stop, and `run` exits non-zero so the
//! kubelet restarts the container. Shutdown itself is bounded: a defragmentation cannot be
//! cancelled on the server, so after the grace period the daemon exits saying what is still
//! running there rather than hanging past the pod's termination grace period.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{Id, JoinSet};

use crate::report::state::Shared;
use crate::shutdown::Shutdown;

/// How long stopping may take: below Kubernetes' default 30 s termination grace period.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How long `/healthz` serves the failure before the daemon stops.
const FAILURE_LINGER: Duration = Duration::from_secs(1);

pub struct Supervisor {
    tasks: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    shared: Arc<Shared>,
    shutdown: Shutdown,
}

impl Supervisor {
    pub fn new(shared: Arc<Shared>, shutdown: Shutdown) -> Supervisor {
        Supervisor {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            shared,
            shutdown,
        }
    }

    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Runs until shutdown and every task has stopped (Ok), or until a task ends on its own
    /// (Err naming it, after the others were asked to stop).
    pub async fn wait(mut self) -> Result<(), LoopEnded> {
        let mut failure: Option<LoopEnded> = None;
        let mut shutdown = self.shutdown.clone();
        loop {
            let next = if shutdown.is_requested() {
                match tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.join_next_with_id()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.give_up();
                        break;
                    }
                }
            } else {
                tokio::select! {
                    next = self.tasks.join_next_with_id() => next,
                    _ = shutdown.requested() => continue,
                }
            };
            let Some(result) = next else { break };
            let (id, how) = match result {
                Ok((id, ())) => (id, How::Ended),
                Err(e) if e.is_panic() => (e.id(), How::Panicked(panic_message(e.into_panic()))),
                Err(e) => (e.id(), How::Cancelled),
            };
            if self.shutdown.is_requested() && how == How::Ended {
                continue; // a normal stop
            }
            let name = self.names.get(&id).copied().unwrap_or("a");
            let ended = LoopEnded { name, how };
            tracing::error!("{ended}; stopping so that the container is restarted");
            self.shared.write().failed_loop = Some(ended.to_string());
            if failure.is_none() {
                // Let a probe or scrape see the 503 before the server goes away with the rest.
                tokio::time::sleep(FAILURE_LINGER).await;
            }
            failure.get_or_insert(ended);
            self.shutdown.request();
        }
        match failure {
            Some(ended) => Err(ended),
            None => Ok(()),
        }
    }

    fn give_up(&mut self) {
        let in_flight = self.shared.read().maintenance.in_flight.clone();
        match in_flight {
            Some(step) => tracing::warn!(
                "stopping after {}s with a {step} still running on the server: etcd finishes it on its own (it cannot be cancelled); the next actor's health gate waits for it",
                SHUTDOWN_GRACE.as_secs()
            ),
            None => tracing::warn!(
                "stopping after {}s although a step had not finished",
                SHUTDOWN_GRACE.as_secs()
            ),
        }
        self.tasks.abort_all();
    }
}

/// A loop that ended while the daemon was not stopping: the daemon stops too (exit 1), so that
/// the container is restarted rather than left half alive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {name} loop {how} unexpectedly")]
pub struct LoopEnded {
    pub name: &'static str,
    pub how: How,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum How {
    #[error("ended")]
    Ended,
    #[error("panicked: {0}")]
    Panicked(String),
    #[error("was cancelled")]
    Cancelled,
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
