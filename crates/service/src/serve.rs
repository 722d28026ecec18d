use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;
use tonic::transport::server::Router;
use tracing::info;

pub use tonic_health::server::HealthReporter;

/// gRPC server set-up shared by the services: every server carries `grpc.health.v1` and
/// reflection, and a span per request named after the RPC.
#[derive(Debug)]
pub struct GrpcServer;

impl GrpcServer {
    /// Returns a router that already serves health and reflection (`grpc.reflection.v1` and,
    /// for older clients, `v1alpha`) for the `aro` protos, and the reporter through which the
    /// service sets its serving status.
    ///
    /// # Panics
    ///
    /// Panics when the embedded descriptor sets are invalid, which the build prevents.
    pub fn router() -> (Router, HealthReporter) {
        let (reporter, health) = tonic_health::server::health_reporter();
        let reflection_builder = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(aro_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection = reflection_builder()
            .build_v1()
            .expect("the embedded descriptor sets are valid");
        let reflection_alpha = reflection_builder()
            .build_v1alpha()
            .expect("the embedded descriptor sets are valid");
        let router = tonic::transport::Server::builder()
            .trace_fn(|request| {
                tracing::info_span!(
                    "grpc.server",
                    otel.kind = "server",
                    rpc.system = "grpc",
                    rpc.method = %request.uri().path(),
                )
            })
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_alpha);
        (router, reporter)
    }

    /// Serves `router` on `addr` until `shutdown` is cancelled, then lets open calls finish.
    ///
    /// # Errors
    ///
    /// Returns the transport error when the address cannot be bound.
    pub async fn serve(
        router: Router,
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> Result<(), tonic::transport::Error> {
        info!(%addr, "serving gRPC");
        router
            .serve_with_shutdown(addr, async move { shutdown.cancelled().await })
            .await
    }
}
