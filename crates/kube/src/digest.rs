//! Image digests: what each container runs (`imageID`) against what it should run (the
//! `aro.io/expected-digest` annotation, or the digest pinned in the image reference).

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::labels;

/// A container that runs another image than the expected one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestMismatch {
    pub container: String,
    /// Image reference of the container's spec.
    pub image: String,
    /// `sha256:<hex>` the container should run.
    pub expected: String,
    /// `sha256:<hex>` the container runs, from its status's `imageID`.
    pub actual: String,
}

/// Returns the `sha256:<hex>` digest in an image reference or image id, such as
/// `registry/app@sha256:<hex>`, `docker-pullable://app@sha256:<hex>` or `sha256:<hex>`.
pub fn digest_of(reference: &str) -> Option<&str> {
    let digest = match reference.rsplit_once('@') {
        Some((_, digest)) => digest,
        None => reference
            .rsplit_once("://")
            .map_or(reference, |(_, rest)| rest),
    };
    let hex = digest.strip_prefix("sha256:")?;
    let valid = hex.len() == 64 && hex.bytes().all(|byte| byte.is_ascii_hexdigit());
    valid.then_some(digest)
}

/// The digest `container` must run: from the pod's `aro.io/expected-digest` annotation
/// (`sha256:<hex>` for every container, or `name=sha256:<hex>,...` per container), or else the
/// digest pinned in `image`. `None` when neither names one.
pub fn expected_digest<'a>(pod: &'a Pod, container: &str, image: &'a str) -> Option<&'a str> {
    if let Some(annotation) = pod.annotations().get(labels::EXPECTED_DIGEST) {
        for entry in annotation.split(',').map(str::trim) {
            match entry.split_once('=') {
                Some((name, digest)) if name.trim() == container => {
                    return digest_of(digest.trim());
                }
                Some(_) => {}
                None => return digest_of(entry),
            }
        }
    }
    digest_of(image)
}

/// Lists the containers of `pod` whose running image differs from the expected digest.
/// Containers without a reported `imageID` (not started yet) or without an expected digest
/// are not compared.
pub fn mismatches(pod: &Pod) -> Vec<DigestMismatch> {
    let Some(statuses) = pod
        .status
        .as_ref()
        .and_then(|status| status.container_statuses.as_ref())
    else {
        return Vec::new();
    };
    let specs = pod
        .spec
        .as_ref()
        .map(|spec| spec.containers.as_slice())
        .unwrap_or_default();
    statuses
        .iter()
        .filter_map(|status| {
            let image = specs
                .iter()
                .find(|spec| spec.name == status.name)
                .and_then(|spec| spec.image.as_deref())
                .unwrap_or(status.image.as_str());
            let expected = expected_digest(pod, &status.name, image)?;
            let actual = digest_of(&status.image_id)?;
            (actual != expected).then(|| DigestMismatch {
                container: status.name.clone(),
                image: image.to_owned(),
                expected: expected.to_owned(),
                actual: actual.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn digests_are_found_in_references_and_ids() {
        let digest = format!("sha256:{HEX}");
        for reference in [
            format!("registry.local/web@sha256:{HEX}"),
            format!("docker-pullable://registry.local/web@sha256:{HEX}"),
            format!("sha256:{HEX}"),
            format!("containerd://sha256:{HEX}"),
        ] {
            assert_eq!(digest_of(&reference), Some(digest.as_str()), "{reference}");
        }
    }

    #[test]
    fn tags_and_short_digests_are_not_digests() {
        for reference in ["registry.local/web:v3", "sha256:abc", "web@sha512:00", ""] {
            assert_eq!(digest_of(reference), None, "{reference}");
        }
    }
}
