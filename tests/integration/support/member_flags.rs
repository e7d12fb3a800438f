//! The flags a test cluster's etcd members start with.
//!
//! Why apart: every release in the matrix takes the same flags (3.4 to 3.7 alike), and the
//! timings short enough for tests are decided here, not beside the process handling.

use super::*;

/// etcd's flags for one member of a test cluster: TLS between clients and peers, a log file,
/// and timings short enough for tests (50 ms heartbeats, 500 ms elections).
pub(super) fn member_flags(
    name: &str,
    (client_url, peer_url, metrics_url): (&str, &str, &str),
    initial_cluster: &str,
    token: &str,
    pki: &Pki,
    data_dir: &Path,
    log_path: &Path,
) -> Vec<String> {
    let p = |p: &Path| p.display().to_string();
    let flags: [(&str, String); 20] = [
        ("--name", name.into()),
        ("--data-dir", p(data_dir)),
        ("--listen-client-urls", client_url.into()),
        ("--advertise-client-urls", client_url.into()),
        ("--listen-peer-urls", peer_url.into()),
        ("--initial-advertise-peer-urls", peer_url.into()),
        ("--listen-metrics-urls", metrics_url.into()),
        ("--initial-cluster", initial_cluster.into()),
        ("--initial-cluster-state", "new".into()),
        ("--initial-cluster-token", token.into()),
        ("--cert-file", p(&pki.server_cert)),
        ("--key-file", p(&pki.server_key)),
        ("--trusted-ca-file", p(&pki.ca)),
        ("--peer-cert-file", p(&pki.server_cert)),
        ("--peer-key-file", p(&pki.server_key)),
        ("--peer-trusted-ca-file", p(&pki.ca)),
        ("--logger", "zap".into()),
        ("--log-outputs", p(log_path)),
        ("--heartbeat-interval", "50".into()),
        ("--election-timeout", "500".into()),
    ];
    let mut args: Vec<String> = flags
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect();
    args.extend(s(&[
        "--snapshot-count",
        "5000",
        "--client-cert-auth",
        "--peer-client-cert-auth",
    ]));
    args
}
