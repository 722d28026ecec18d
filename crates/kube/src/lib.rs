//! The Kubernetes runtime.
