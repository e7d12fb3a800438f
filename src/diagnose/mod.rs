//! Diagnose: what is filling etcd. The keyspace by Kubernetes resource (`analyze`), the objects
//! rewritten again and again (the churn detector, which names sync loops), and when the quota
//! will be reached at the current growth (the forecast), and how fast new history arrives
//! (`history_rate`, which the space controller keeps under the quota).
//!
//! Why: NOSPACE has two causes — history never compacted (the engine's job) and sync loops, an
//! object bounced between vCluster and the host that fills etcd fast. Healing the second without
//! naming the object only postpones the next outage. Everything here reports keys, counts and
//! sizes — never values.

pub mod admission;
pub mod analyze;
pub mod churn;
pub mod fields;
pub mod forecast;
pub mod history_rate;
pub mod keys;
pub mod pages;
pub mod topk;
pub mod watcher;
