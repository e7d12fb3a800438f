//! Which space quota applies, and where that figure came from.
//!
//! Why: etcd < 3.6 does not report its `--quota-backend-bytes` over gRPC, yet every space
//! decision (defrag rule, disarm threshold, forecast) divides by it. Order of trust: what etcd
//! itself reports (3.6 `Status.dbSizeQuota`) → etcd's own `/metrics`
//! (`etcd_server_quota_backend_bytes`) → the `--quota-backend-bytes` flag. The winner is
//! remembered and shown, because a wrong quota is the first thing to suspect when a heal blocks.

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuotaSource {
    /// etcd ≥ 3.6 reported it in Status.
    Etcd,
    /// etcd 3.6.0–3.6.5 reported 0 in Status: its `--quota-backend-bytes` is unset, so etcd's own
    /// default applies (2 GiB; etcd#20790 made 3.6.6 report that figure itself).
    EtcdDefault,
    /// Read from `--etcd-metrics-url`.
    MetricsUrl,
    /// The `--quota-backend-bytes` flag (or its default).
    Flag,
    /// Published by the sidecar beside that member (read from its member, etcd < 3.6).
    Candidate,
}

impl QuotaSource {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaSource::Etcd => "etcd",
            QuotaSource::EtcdDefault => "etcd-default",
            QuotaSource::MetricsUrl => "metrics-url",
            QuotaSource::Flag => "flag",
            QuotaSource::Candidate => "candidate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Quota {
    pub bytes: u64,
    pub source: QuotaSource,
}

/// etcd's quota when `--quota-backend-bytes` is unset or 0 (`DefaultQuotaBytes`, 2 GiB).
pub const ETCD_DEFAULT_QUOTA: u64 = 2 << 30;

/// The quota a member reports in its own Status. etcd ≥ 3.6 always has the field, so a 0 there
/// is not "unknown" but 3.6.0–3.6.5 saying the flag is unset: etcd's default applies. Before 3.6
/// the field does not exist and a 0 says nothing.
#[cfg(feature = "daemon")]
pub fn reported(status: &crate::etcd::MemberStatus) -> Option<Quota> {
    match status.db_size_quota {
        0 if status.version_at_least(3, 6) => Some(Quota {
            bytes: ETCD_DEFAULT_QUOTA,
            source: QuotaSource::EtcdDefault,
        }),
        0 => None,
        bytes => Some(Quota {
            bytes,
            source: QuotaSource::Etcd,
        }),
    }
}

/// Each member's own quota where it is known, best source first: what the member reports
/// itself (etcd ≥ 3.6 Status), the local member's `/metrics`, then what the sidecar beside a
/// member published in its candidate value. A member missing here has no known quota of its own.
#[cfg(feature = "daemon")]
pub fn member_quotas(
    members: &[crate::observe::MemberObservation],
    local_member: Option<u64>,
    local_metrics: Option<u64>,
    candidates: Option<&[crate::observe::Candidate]>,
) -> std::collections::BTreeMap<u64, Quota> {
    let mut quotas = std::collections::BTreeMap::new();
    for member in members {
        let quota = if let Some(quota) = member.status.as_ref().and_then(reported) {
            Some(quota)
        } else if let (Some(bytes), true) = (local_metrics, local_member == Some(member.id)) {
            Some(Quota {
                bytes,
                source: QuotaSource::MetricsUrl,
            })
        } else {
            candidates
                .unwrap_or(&[])
                .iter()
                .filter(|c| c.member == member.id)
                .find_map(|c| c.quota)
                .map(|bytes| Quota {
                    bytes,
                    source: QuotaSource::Candidate,
                })
        };
        if let Some(quota) = quota {
            quotas.insert(member.id, quota);
        }
    }
    quotas
}

/// The quota the cluster as a whole must stay under: the smallest member's (NOSPACE comes from
/// whichever member reaches its own first), else the flag.
#[cfg(feature = "daemon")]
pub fn cluster_quota(member_quotas: &std::collections::BTreeMap<u64, Quota>, flag: u64) -> Quota {
    member_quotas
        .values()
        .copied()
        .min_by_key(|q| q.bytes)
        .unwrap_or(Quota {
            bytes: flag,
            source: QuotaSource::Flag,
        })
}

/// Why `--etcd-metrics-url` gave no quota.
#[cfg(feature = "daemon")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsQuotaError {
    /// Refused at start-up (not plain http, not a URL).
    #[error("--etcd-metrics-url {url}: {why}")]
    Url { url: String, why: String },
    #[error("GET {url}: {why}")]
    Fetch { url: String, why: String },
    #[error("GET {url}: no etcd_server_quota_backend_bytes sample")]
    NoSample { url: String },
    #[error("GET {url}: no answer within {}", humantime::format_duration(*timeout))]
    Timeout {
        url: String,
        timeout: std::time::Duration,
    },
}

/// Fetches `url` (plain http) and reads `etcd_server_quota_backend_bytes` from it. The daemon's
/// only (Cargo.toml's `daemon` feature): the parser is also built alone, for the fuzz target.
#[cfg(feature = "daemon")]
pub async fn fetch_metrics_quota(
    url: &str,
    timeout: std::time::Duration,
) -> Result<u64, MetricsQuotaError> {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let bad_url = |why: String| MetricsQuotaError::Url {
        url: url.into(),
        why,
    };
    if !url.starts_with("http://") {
        return Err(bad_url(
            "only http:// is supported (etcd serves /metrics over plain HTTP on \
             --listen-metrics-urls, e.g. http://127.0.0.1:2381/metrics)"
                .into(),
        ));
    }
    let uri: hyper::Uri = url.parse().map_err(|e| bad_url(format!("{e}")))?;
    let failed = |why: &dyn std::fmt::Display| MetricsQuotaError::Fetch {
        url: url.into(),
        why: why.to_string(),
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let fetch = async {
        let response = client.get(uri).await.map_err(|e| failed(&e))?;
        if !response.status().is_success() {
            return Err(failed(&format!("HTTP {}", response.status())));
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(&e))?
            .to_bytes();
        parse_quota_metric(&String::from_utf8_lossy(&body))
            .ok_or_else(|| MetricsQuotaError::NoSample { url: url.into() })
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| MetricsQuotaError::Timeout {
            url: url.into(),
            timeout,
        })?
}

/// Finds the `etcd_server_quota_backend_bytes` sample in Prometheus text exposition.
pub fn parse_quota_metric(text: &str) -> Option<u64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix("etcd_server_quota_backend_bytes")?;
            // Either a space or a label set may follow the name; the value is the next field.
            let rest = match rest.strip_prefix('{') {
                Some(labels) => labels.split_once('}')?.1,
                None if rest.starts_with(' ') => rest,
                None => return None,
            };
            let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
            // A quota is a finite count of at least one byte; `+Inf`, `NaN` or `0.5` say
            // nothing about it (0.5 would truncate to a quota of 0 bytes).
            (value >= 1.0 && value.is_finite()).then_some(value as u64)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_quota_sample() {
        let text = "# HELP etcd_server_quota_backend_bytes Current backend storage quota size in bytes.\n\
                    # TYPE etcd_server_quota_backend_bytes gauge\n\
                    etcd_server_quota_backend_bytes 1.6777216e+07\n\
                    etcd_server_quota_backend_bytes_other 1\n";
        assert_eq!(parse_quota_metric(text), Some(16 << 20));
        assert_eq!(
            parse_quota_metric("etcd_server_quota_backend_bytes{a=\"b\"} 42\n"),
            Some(42)
        );
        assert_eq!(
            parse_quota_metric("etcd_server_quota_backend_bytes_x 42\n"),
            None
        );
        assert_eq!(parse_quota_metric(""), None);
    }

    #[cfg(feature = "daemon")]
    fn status(version: &str, db_size_quota: u64) -> crate::etcd::MemberStatus {
        crate::etcd::MemberStatus::for_tests(version, db_size_quota)
    }

    /// etcd 3.6.4 (vCluster with Kubernetes 1.34) reports 0 when the quota flag is unset: that is
    /// etcd's 2 GiB default, not "unknown" and not 0 bytes; before 3.6 a 0 is no report at all.
    #[cfg(feature = "daemon")]
    #[test]
    fn a_zero_from_etcd_3_6_is_its_default_and_from_3_5_is_nothing() {
        let q = reported(&status("3.6.4", 0)).unwrap();
        assert_eq!((q.bytes, q.source), (2 << 30, QuotaSource::EtcdDefault));
        let q = reported(&status("3.7.3", 16 << 20)).unwrap();
        assert_eq!((q.bytes, q.source), (16 << 20, QuotaSource::Etcd));
        assert_eq!(reported(&status("3.5.21", 0)), None);
        assert_eq!(reported(&status("3.4.23", 0)), None);
        assert_eq!(reported(&status("", 0)), None);
    }

    /// Found by fuzz/fuzz_targets/quota_metric.rs: a fraction truncated to a quota of 0 bytes.
    #[test]
    fn a_sample_below_one_byte_or_not_finite_is_no_quota() {
        for value in ["0.5", "+Inf", "NaN", "-1", "0"] {
            let text = format!("etcd_server_quota_backend_bytes {value}\n");
            assert_eq!(parse_quota_metric(&text), None, "{value}");
        }
    }
}
