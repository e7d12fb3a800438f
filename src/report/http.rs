//! The HTTP surface of `run`: `/metrics`, `/healthz`, `/readyz`, `/status`.
//!
//! Why these semantics: `/healthz` says only that the daemon's loops are alive — it never depends
//! on etcd, so a kubelet does not restart the sidecar because etcd is down. `/readyz` says the
//! daemon can see etcd (an observation succeeded within 3 poll intervals).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::report::metrics::{encode_openmetrics, encode_prometheus};
use crate::report::state::Shared;
use crate::report::view::ClusterView;
use crate::report::web::{BasicAuth, WebConfig};
use crate::shutdown::Shutdown;

/// How long a client may take to send its request headers (a slowloris holds them open).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may live, idle or not: a scrape takes milliseconds; a connection
/// kept alive between scrapes is simply opened again.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Serves the router on `listener` until shutdown, every connection bounded in time: headers
/// (and the TLS handshake) within 5 s, the whole connection within 60 s. With a web config:
/// TLS and basic auth (see `web`).
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    web: Option<WebConfig>,
    mut shutdown: Shutdown,
) {
    let auth = web
        .as_ref()
        .and_then(|w| w.auth.clone().map(|a| (a, w.open_healthz)));
    let tls = web.and_then(|w| w.tls).map(tokio_rustls::TlsAcceptor::from);
    let app = router(shared, auth);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accepting an HTTP connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.requested() => return,
        };
        let service = TowerToHyperService::new(app.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(tls) = tls else {
                return serve_connection(stream, service).await;
            };
            match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.accept(stream)).await {
                Ok(Ok(stream)) => serve_connection(stream, service).await,
                Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
}

async fn serve_connection<I>(io: I, service: TowerToHyperService<Router>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = http.serve_connection(TokioIo::new(io), service);
    let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
}

/// The routes; with `auth`, every request needs the credentials (`/healthz` too unless the
/// flag says it stays open for the kubelet's probe).
pub fn router(shared: Arc<Shared>, auth: Option<(Arc<BasicAuth>, bool)>) -> Router {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(shared);
    let Some((auth, open_healthz)) = auth else {
        return app;
    };
    app.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let auth = auth.clone();
            async move {
                let open = open_healthz && request.uri().path() == "/healthz";
                let header = request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                if open || auth.allows(header) {
                    next.run(request).await
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        [(header::WWW_AUTHENTICATE, "Basic realm=\"etcd-upkeep\"")],
                        "unauthorized\n",
                    )
                        .into_response()
                }
            }
        },
    ))
}

/// OpenMetrics when the scraper asks for it (Prometheus does), the classic text format otherwise.
async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.metrics.ready.set(i64::from(shared.is_ready()));
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if wants_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            encode_openmetrics(&shared.registry),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            encode_prometheus(&shared.registry),
        )
            .into_response()
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.liveness() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let why = shared
            .read()
            .last_error
            .clone()
            .unwrap_or_else(|| "no successful observation yet".into());
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response()
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let ready = shared.is_ready();
    let state = shared.read();
    let body = serde_json::json!({
        "ready": ready,
        "last_error": state.last_error,
        "observation": state.observation.as_deref().map(ClusterView::from_observation),
        "maintenance": state.maintenance,
        "actions": state.actions.newest_first(),
        "diagnosis": {
            "churn_last_minute": state.churn_last_minute,
            "churn_last_ten_minutes": state.churn_last_ten_minutes,
            "forecast": state.forecast,
        },
        "space": state.space,
        "watch_progress": state.watch_progress,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(&body).unwrap_or_default(),
    )
        .into_response()
}
