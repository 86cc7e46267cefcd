//! A loopback OTLP receiver, over http/protobuf ([`OtlpReceiver::start`]) or gRPC
//! ([`OtlpReceiver::start_grpc`]): it answers every trace and metric export with an empty
//! success and records each request's path, headers and body (over HTTP as sent:
//! compressed bodies are kept compressed; over gRPC the decoded message, encoded again).
//! It stops when dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use tokio::sync::oneshot;

/// One export the receiver got.
#[derive(Clone, Debug)]
pub struct Export {
    /// `/v1/traces` or `/v1/metrics`.
    pub path: String,
    /// Its headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Its body, as sent.
    pub body: Vec<u8>,
}

impl Export {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The receiver; dropping it stops it.
pub struct OtlpReceiver {
    addr: SocketAddr,
    exports: Arc<Mutex<Vec<Export>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl OtlpReceiver {
    /// Starts the receiver on a free loopback port, on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or when no loopback port can be bound (test support).
    pub async fn start() -> Self {
        let exports = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .route("/v1/metrics", post(receive))
            .with_state(Arc::clone(&exports));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let stop = crate::serve_until_stopped(listener, app);
        Self {
            addr,
            exports,
            stop: Some(stop),
        }
    }

    /// Starts an OTLP/gRPC receiver on a free loopback port, on the current tokio runtime.
    /// Its exports have the HTTP paths (`/v1/traces`, `/v1/metrics`) and the request's
    /// gRPC metadata as headers.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or when no loopback port can be bound (test support).
    pub async fn start_grpc() -> Self {
        use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsServiceServer;
        use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;

        let exports = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let (stop, stopped) = oneshot::channel::<()>();
        let grpc = Grpc(Arc::clone(&exports));
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(
                    TraceServiceServer::new(grpc.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .add_service(
                    MetricsServiceServer::new(grpc)
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .serve_with_incoming_shutdown(tokio_stream_of(listener), async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            exports,
            stop: Some(stop),
        }
    }

    /// The endpoint to configure: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every export received so far.
    pub fn exports(&self) -> Vec<Export> {
        self.exports.lock().expect("exports").clone()
    }

    /// Every trace export, decoded (uncompressed bodies only).
    ///
    /// # Panics
    ///
    /// On a body that is not an `ExportTraceServiceRequest` (test support).
    pub fn trace_requests(
        &self,
    ) -> Vec<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest> {
        self.decoded("/v1/traces")
    }

    /// Every metric of every metric export, decoded, in the order they arrived.
    ///
    /// # Panics
    ///
    /// On a body that is not an `ExportMetricsServiceRequest` (test support).
    pub fn metrics(&self) -> Vec<opentelemetry_proto::tonic::metrics::v1::Metric> {
        self.decoded::<opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest>(
            "/v1/metrics",
        )
        .into_iter()
        .flat_map(|r| r.resource_metrics)
        .flat_map(|r| r.scope_metrics)
        .flat_map(|s| s.metrics)
        .collect()
    }

    fn decoded<M: prost::Message + Default>(&self, path: &str) -> Vec<M> {
        self.exports()
            .iter()
            .filter(|e| e.path == path)
            .map(|e| M::decode(e.body.as_slice()).expect("an OTLP message"))
            .collect()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn receive(
    State(exports): State<Arc<Mutex<Vec<Export>>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], Vec<u8>) {
    exports.lock().expect("exports").push(Export {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    });
    // An empty Export*ServiceResponse: zero bytes of protobuf.
    (
        StatusCode::OK,
        [("content-type", "application/x-protobuf")],
        Vec::new(),
    )
}

/// The accepted connections of `listener`, as tonic's server takes them.
fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

/// The gRPC services, recording into the receiver's list.
#[derive(Clone)]
struct Grpc(Arc<Mutex<Vec<Export>>>);

impl Grpc {
    fn record<M: prost::Message>(&self, path: &str, request: tonic::Request<M>) {
        let headers = request
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                    Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))
                }
                tonic::metadata::KeyAndValueRef::Binary(..) => None,
            })
            .collect();
        self.0.lock().expect("exports").push(Export {
            path: path.to_owned(),
            headers,
            body: request.into_inner().encode_to_vec(),
        });
    }
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        self.record("/v1/traces", request);
        Ok(tonic::Response::new(Default::default()))
    }
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsService
    for Grpc
{
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse,
        >,
        tonic::Status,
    > {
        self.record("/v1/metrics", request);
        Ok(tonic::Response::new(Default::default()))
    }
}
