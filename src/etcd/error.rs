//! One-line, actionable errors out of etcd-client/tonic error chains.
//!
//! Why: a TLS failure surfaces as `transport error` with the real cause (`invalid peer
//! certificate: UnknownIssuer`) three `source()`s deep. Operators need the endpoint, the
//! operation and the root cause on one line, and the engine needs to tell a timeout (the server
//! may still be working: a defrag keeps running) from a refusal or a NOSPACE.

use std::error::Error as StdError;
use std::fmt;

/// What kind of failure, as far as decisions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No answer in time. The server may still be executing the request.
    Timeout,
    /// TLS handshake or certificate verification failed.
    Tls,
    /// Nothing listens there (connection refused, no route, DNS).
    Unreachable,
    /// The revision asked for is already compacted (someone else compacted: normal).
    Compacted,
    /// etcd refused a write: `mvcc: database space exceeded`.
    NoSpace,
    /// etcd's auth is on and the client certificate's user lacks the role the RPC needs.
    PermissionDenied,
    /// Anything else the server or client said.
    Other,
}

/// An etcd request that failed: which operation, against which endpoint, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdError {
    pub op: &'static str,
    pub endpoint: String,
    pub kind: FailureKind,
    pub message: String,
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}: {}", self.op, self.endpoint, self.message)
    }
}

impl StdError for EtcdError {}

impl EtcdError {
    pub fn timeout(op: &'static str, endpoint: &str, after: std::time::Duration) -> Self {
        EtcdError {
            op,
            endpoint: endpoint.to_string(),
            kind: FailureKind::Timeout,
            message: format!(
                "no answer within {} (endpoint frozen, overloaded or busy defragmenting)",
                humantime::format_duration(after)
            ),
        }
    }

    pub fn from_client(op: &'static str, endpoint: &str, err: &etcd_client::Error) -> Self {
        let chain = error_chain(err);
        let kind = classify(&chain);
        let message = match kind {
            FailureKind::Tls => format!("TLS/certificate error: {}", tls_cause(&chain)),
            FailureKind::Unreachable => format!("connection failed: {}", unreachable_cause(&chain)),
            FailureKind::PermissionDenied => format!(
                "{}: {}",
                grpc_message(err).unwrap_or_else(|| last_cause(&chain)),
                ROOT_ROLE_NEEDED
            ),
            _ => grpc_message(err).unwrap_or_else(|| last_cause(&chain)),
        };
        EtcdError {
            op,
            endpoint: endpoint.to_string(),
            kind,
            message,
        }
    }

    /// A connection closed at once, with nothing said (no status, no TLS alert text), while we
    /// presented a client certificate: that is how a server's rejection of the certificate
    /// reaches a TLS 1.3 client. Says so, naming the flag, instead of "transport error".
    pub fn client_cert_rejected(self, cert: &str) -> Self {
        let silent = [
            "connection closed",
            "operation was canceled",
            "transport error",
        ]
        .iter()
        .any(|t| self.message.contains(t));
        if !silent || !matches!(self.kind, FailureKind::Other | FailureKind::Unreachable) {
            return self;
        }
        EtcdError {
            kind: FailureKind::Tls,
            message: format!(
                "etcd closed the connection right after the TLS handshake: if this persists, it does not trust the client certificate (--cert {cert}), which must be signed by the CA in etcd's --trusted-ca-file"
            ),
            ..self
        }
    }
}

/// Every message in the error's source chain, outermost first, de-duplicated.
fn error_chain(err: &(dyn StdError + 'static)) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !out.iter().any(|seen| seen == &text) {
            out.push(text);
        }
        current = e.source();
    }
    out
}

fn grpc_message(err: &etcd_client::Error) -> Option<String> {
    match err {
        etcd_client::Error::GRpcStatus(status) if !status.message().is_empty() => {
            Some(status.message().to_string())
        }
        _ => None,
    }
}

/// What a refusal under etcd's auth means for etcd-upkeep, and the fix (etcd 3.6 `authMaintenanceServer`).
const ROOT_ROLE_NEEDED: &str = "etcd's auth is on, and the user named by the client certificate's CN \
     lacks the root role, which etcd >= 3.6 requires for Status, HashKV, Defragment and MoveLeader \
     (and for Alarm from 3.6.9): grant it (etcdctl user grant-role <CN> root) or use a root client certificate";

fn classify(chain: &[String]) -> FailureKind {
    let all = chain.join(" | ").to_lowercase();
    if all.contains("permission denied") || all.contains("user name not found") {
        FailureKind::PermissionDenied
    } else if all.contains("required revision has been compacted") {
        FailureKind::Compacted
    } else if all.contains("database space exceeded") {
        FailureKind::NoSpace
    } else if all.contains("certificate")
        || all.contains("tls")
        || all.contains("handshake")
        || all.contains("unknownissuer")
    {
        FailureKind::Tls
    } else if all.contains("connection refused")
        || all.contains("tcp connect error")
        || all.contains("dns error")
        || all.contains("no route to host")
        || all.contains("failed to lookup address")
    {
        FailureKind::Unreachable
    } else if all.contains("deadline") || all.contains("timed out") || all.contains("timeout") {
        FailureKind::Timeout
    } else {
        FailureKind::Other
    }
}

/// A short cause for a failed connection, instead of tonic's nested debug output.
fn unreachable_cause(chain: &[String]) -> String {
    let all = chain.join(" | ").to_lowercase();
    let known = [
        (
            "connection refused",
            "connection refused (nothing listens there)",
        ),
        ("dns error", "DNS lookup failed"),
        ("failed to lookup address", "DNS lookup failed"),
        ("no route to host", "no route to host"),
        ("network is unreachable", "network unreachable"),
    ];
    known
        .iter()
        .find(|(needle, _)| all.contains(needle))
        .map(|(_, text)| text.to_string())
        .unwrap_or_else(|| last_cause(chain))
}

fn last_cause(chain: &[String]) -> String {
    chain.last().cloned().unwrap_or_default()
}

/// The most specific message that mentions certificates, else the root cause.
fn tls_cause(chain: &[String]) -> String {
    let innermost_with = |needle: &str| {
        chain
            .iter()
            .rev()
            .find(|m| m.to_lowercase().contains(needle))
            .cloned()
    };
    innermost_with("certificate")
        .or_else(|| innermost_with("unknownissuer"))
        .unwrap_or_else(|| last_cause(chain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let c = |s: &str| classify(&[s.to_string()]);
        assert_eq!(
            c("invalid peer certificate: UnknownIssuer"),
            FailureKind::Tls
        );
        assert_eq!(
            c("tcp connect error: Connection refused (os error 111)"),
            FailureKind::Unreachable
        );
        assert_eq!(
            c("etcdserver: mvcc: required revision has been compacted"),
            FailureKind::Compacted
        );
        assert_eq!(
            c("etcdserver: mvcc: database space exceeded"),
            FailureKind::NoSpace
        );
        assert_eq!(c("context deadline exceeded"), FailureKind::Timeout);
        assert_eq!(
            c("etcdserver: permission denied"),
            FailureKind::PermissionDenied
        );
        assert_eq!(c("something odd"), FailureKind::Other);
    }

    #[test]
    fn tls_cause_prefers_the_certificate_message() {
        let chain = vec![
            "transport error".to_string(),
            "invalid peer certificate: UnknownIssuer".to_string(),
            "UnknownIssuer".to_string(),
        ];
        assert_eq!(tls_cause(&chain), "invalid peer certificate: UnknownIssuer");
    }
}
