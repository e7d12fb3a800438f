//! Watch streams: every write under a prefix, as keys and sizes (values only when asked for), and
//! one key's progress notifications.

use super::{Etcd, EtcdError, Result};

/// One event of a watch: which key, how big, put or delete. Values are never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub key: String,
    /// Key + value bytes written (a delete counts its key).
    pub bytes: u64,
    pub is_delete: bool,
    /// The key did not exist before this write (its first version): live data grows, no
    /// version is superseded.
    pub is_create: bool,
    /// The value, only when the caller asked for this key's (a hot key's field analysis);
    /// never logged or exported.
    pub value: Option<Vec<u8>>,
}

/// What a watch stream delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMessage {
    Events(Vec<WatchEvent>),
    /// The start revision was compacted: restart from a newer one.
    Compacted {
        compact_revision: i64,
    },
    /// The server ended the watch (reason given).
    Canceled(String),
    /// The watch was created (etcd's first answer, no events).
    Created,
    /// A progress notification: no events, the store at `revision` (only on a watch that asked
    /// for them, while nothing it watches is written).
    Progress {
        revision: i64,
    },
}

/// A watch over a key prefix, from a start revision.
pub struct WatchSubscription {
    endpoint: String,
    stream: etcd_client::WatchStream,
}

impl WatchSubscription {
    /// The next message; `Ok(None)` when the stream closed. Values are dropped.
    pub async fn next(&mut self) -> Result<Option<WatchMessage>> {
        self.next_keeping(|_| false).await
    }

    /// The same, keeping the values of the keys `keep` picks.
    pub async fn next_keeping(
        &mut self,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Option<WatchMessage>> {
        let message = self
            .stream
            .message()
            .await
            .map_err(|e| EtcdError::from_client("Watch", &self.endpoint, &e))?;
        let Some(response) = message else {
            return Ok(None);
        };
        if response.compact_revision() > 0 {
            return Ok(Some(WatchMessage::Compacted {
                compact_revision: response.compact_revision(),
            }));
        }
        if response.canceled() {
            return Ok(Some(WatchMessage::Canceled(
                response.cancel_reason().to_string(),
            )));
        }
        if response.created() {
            return Ok(Some(WatchMessage::Created));
        }
        if response.events().is_empty() {
            let revision = response.header().map_or(0, |h| h.revision());
            return Ok(Some(WatchMessage::Progress { revision }));
        }
        let events = response
            .events()
            .iter()
            .filter_map(|e| {
                let kv = e.kv()?;
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let is_delete = e.event_type() == etcd_client::EventType::Delete;
                Some(WatchEvent {
                    value: (!is_delete && keep(&key)).then(|| kv.value().to_vec()),
                    bytes: (kv.key().len() + kv.value().len()) as u64,
                    is_delete,
                    is_create: kv.version() == 1,
                    key,
                })
            })
            .collect();
        Ok(Some(WatchMessage::Events(events)))
    }
}

impl Etcd {
    /// Watches every key under `prefix` from `start_revision` (0: from now).
    pub async fn watch_prefix(
        &self,
        endpoint: &str,
        prefix: &str,
        start_revision: i64,
    ) -> Result<WatchSubscription> {
        let mut options = etcd_client::WatchOptions::new().with_prefix();
        if start_revision > 0 {
            options = options.with_start_revision(start_revision);
        }
        self.watch(endpoint, prefix, options).await
    }

    /// Watches one key, from now, with etcd's progress notifications: what measures the
    /// member's `--watch-progress-notify-interval` when nothing writes `key`.
    pub async fn watch_progress(&self, endpoint: &str, key: &str) -> Result<WatchSubscription> {
        let options = etcd_client::WatchOptions::new().with_progress_notify();
        self.watch(endpoint, key, options).await
    }

    async fn watch(
        &self,
        endpoint: &str,
        key: &str,
        options: etcd_client::WatchOptions,
    ) -> Result<WatchSubscription> {
        let stream = self
            .call("Watch", endpoint, self.dial_timeout, |c| async move {
                c.watch_client()
                    .max_decoding_message_size(64 << 20)
                    .watch(key, Some(options))
                    .await
            })
            .await?;
        Ok(WatchSubscription {
            endpoint: endpoint.to_string(),
            stream,
        })
    }
}
