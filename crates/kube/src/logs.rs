//! Container logs, followed as lines.

use futures::{AsyncBufReadExt, Stream, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, LogParams};

use crate::{Error, Result};

/// Follows the log of `container` in pod `namespace/pod` from now on, one line per item,
/// until the container stops or the API server closes the stream.
///
/// # Errors
///
/// Returns the API error when the stream cannot be opened; the stream's items carry read
/// errors.
pub async fn follow(
    client: Client,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<impl Stream<Item = Result<String>> + use<>> {
    let params = LogParams {
        container: Some(container.to_owned()),
        follow: true,
        tail_lines: Some(0),
        ..LogParams::default()
    };
    let object = format!("log of {namespace}/{pod}/{container}");
    let reader = Api::<Pod>::namespaced(client, namespace)
        .log_stream(pod, &params)
        .await
        .map_err(|source| Error::api("follow", &object, source))?;
    Ok(reader.lines().map_err(move |error| Error::Api {
        operation: "read",
        object: object.clone(),
        source: kube::Error::ReadEvents(error),
    }))
}
