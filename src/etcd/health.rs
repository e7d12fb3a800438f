//! The gRPC health service of one member (`grpc.health.v1.Health/Check`), which etcd-client does
//! not expose.
//!
//! Why: with `StopGRPCServiceOnDefrag` (a 3.6 feature gate, a 3.5 experimental flag) etcd says
//! NOT_SERVING while it defragments. A member that stops answering reads may therefore be busy
//! for someone else rather than faulty, and the health gate must tell the two apart: a busy
//! member is waited for, never healed, never a reason to hand over. Asked only when a read has
//! already failed, on a connection of its own that is dropped afterwards.

use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use super::{Etcd, EtcdError, FailureKind, Result};

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    /// 1 SERVING, 2 NOT_SERVING (grpc/health/v1/health.proto).
    #[prost(int32, tag = "1")]
    status: i32,
}

const NOT_SERVING: i32 = 2;

impl Etcd {
    /// Whether the member's gRPC health service says SERVING for all services (""). `Ok(false)`
    /// only for an explicit NOT_SERVING; anything else it cannot tell is an error.
    pub async fn serving(&self, endpoint: &str, timeout: Duration) -> Result<bool> {
        let failed = |kind, message: String| EtcdError {
            op: "Health/Check",
            endpoint: endpoint.to_string(),
            kind,
            message,
        };
        let mut target = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| failed(FailureKind::Other, e.to_string()))?
            .connect_timeout(self.dial_timeout)
            .timeout(timeout);
        if let Some(tls) = self
            .tls
            .as_ref()
            .filter(|_| endpoint.starts_with("https://"))
        {
            let mut config =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let Some(identity) = &tls.identity {
                config = config.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
            }
            target = target
                .tls_config(config)
                .map_err(|e| failed(FailureKind::Tls, e.to_string()))?;
        }
        let check = async {
            let channel = target
                .connect()
                .await
                .map_err(|e| failed(FailureKind::Unreachable, e.to_string()))?;
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready()
                .await
                .map_err(|e| failed(FailureKind::Unreachable, e.to_string()))?;
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                "/grpc.health.v1.Health/Check",
            );
            let codec =
                tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
            let request = tonic::Request::new(HealthCheckRequest::default());
            let response = grpc
                .unary(request, path, codec)
                .await
                .map_err(|status| failed(FailureKind::Other, status.message().to_string()))?;
            Ok(response.into_inner().status != NOT_SERVING)
        };
        tokio::time::timeout(timeout, check)
            .await
            .map_err(|_| EtcdError::timeout("Health/Check", endpoint, timeout))?
    }
}
