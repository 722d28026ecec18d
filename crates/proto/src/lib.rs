//! Protobuf messages and gRPC services shared by the detector, the brain and the deployer.

pub mod time;

/// Version 1 of the `aro` package.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod v1 {
    tonic::include_proto!("aro.v1");
}

/// Encoded `FileDescriptorSet` of every `aro` proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("aro_descriptor");
