//! The Prometheus `/metrics` HTTP endpoint (OpenMetrics text format).

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;

/// Content type of the OpenMetrics text exposition format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `listener` until `shutdown` completes, then
/// finishes in-flight requests and returns. Any other path is 404 (a wrong
/// method on `/metrics` is 405). Errors are those of accepting connections.
///
/// `Registry` is only read here (metrics are updated through their own
/// atomics), so a plain `Arc` suffices: no lock around it.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(registry);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(registry): State<Arc<Registry>>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            // Only a metric's own Encode impl can fail; keep the server up.
            tracing::error!(error = %e, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn request(addr: std::net::SocketAddr, req: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    fn get(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    }

    #[tokio::test]
    async fn serves_openmetrics_and_404_and_shuts_down() {
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        registry.register("sip_requests", "SIP requests received", counter.clone());
        counter.inc_by(3);

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_metrics(listener, Arc::new(registry), async {
            let _ = stop_rx.await;
        }));

        let resp = request(addr, &get("/metrics")).await;
        let (head, body) = resp.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-type: {OPENMETRICS_CONTENT_TYPE}")),
            "{head}"
        );
        assert!(body.contains("# TYPE sip_requests counter"), "{body}");
        assert!(body.contains("sip_requests_total 3"), "{body}");
        assert!(body.trim_end().ends_with("# EOF"), "{body}");

        // Values are read live, not snapshotted at startup.
        counter.inc();
        let resp = request(addr, &get("/metrics")).await;
        assert!(resp.contains("sip_requests_total 4"), "{resp}");

        for path in ["/", "/metrics/x", "/other"] {
            let resp = request(addr, &get(path)).await;
            assert!(resp.starts_with("HTTP/1.1 404"), "{path}: {resp}");
        }
        let resp = request(
            addr,
            "POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");

        stop_tx.send(()).unwrap();
        let res = tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("server did not stop after shutdown")
            .unwrap();
        assert!(res.is_ok(), "{res:?}");
        // The listener is gone once the server has returned.
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
