//! Cooperative shutdown: SIGTERM/SIGINT flip one flag; every loop checks it between steps.
//!
//! Why between steps: a defragmentation cannot be cancelled on the server, and a step half done
//! (compacted but not yet defragmented, defragmented but not verified) is safe to resume, but a
//! step abandoned mid-RPC would leave the operator guessing. So loops finish the current step,
//! then stop (the pattern of mini-redis' `Shutdown`).

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    /// Starts listening for SIGTERM and SIGINT.
    pub fn on_signals() -> Shutdown {
        let (sender, receiver) = watch::channel(false);
        let sender = Arc::new(sender);
        let signalled = sender.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received; finishing the current step"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; finishing the current step"),
            }
            let _ = signalled.send(true);
        });
        Shutdown { sender, receiver }
    }

    /// Asks every loop to stop (a supervised loop ended: the daemon stops and says why).
    pub fn request(&self) {
        let _ = self.sender.send(true);
    }

    pub fn is_requested(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves when shutdown is requested.
    pub async fn requested(&mut self) {
        while !*self.receiver.borrow_and_update() {
            if self.receiver.changed().await.is_err() {
                return;
            }
        }
    }

    /// Sleeps for `duration` unless shutdown comes first; returns true when shutting down.
    pub async fn sleep(&mut self, duration: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => self.is_requested(),
            _ = self.requested() => true,
        }
    }
}
