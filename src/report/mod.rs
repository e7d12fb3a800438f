//! Report: what the daemon tells people and Prometheus — metrics, the status view (table and
//! JSON), the log of recent actions, and the HTTP endpoints that serve them.
//!
//! Why separate: reporting reads observations and outcomes but never decides or acts, so it can
//! change freely (new metrics, new columns) without touching maintenance logic.

pub mod actions;
pub mod events;
pub mod http;
pub mod metrics;
pub mod state;
pub mod view;
pub mod web;
