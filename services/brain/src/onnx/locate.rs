use std::path::{Path, PathBuf};

/// Finds `libonnxruntime.so`: `ORT_DYLIB_PATH` when set, otherwise the copy that the PyPI
/// `onnxruntime` wheel installs into the project's `.venv`, looked up from the working directory
/// and from each ancestor of the executable (so `target/debug/aro-brain` finds the repository's
/// `.venv`).
pub fn locate_onnxruntime() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return Some(PathBuf::from(path));
    }
    let mut roots: Vec<PathBuf> = std::env::current_dir().into_iter().collect();
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    roots
        .iter()
        .find_map(|root| find_in_venv(&root.join(".venv")))
}

fn find_in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut candidates: Vec<PathBuf> = lib
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("site-packages/onnxruntime/capi"))
        .filter_map(|capi| std::fs::read_dir(capi).ok())
        .flat_map(|entries| entries.filter_map(Result::ok).map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("libonnxruntime.so"))
        })
        .collect();
    // Prefer the versioned file; the wheel ships only that one on some releases.
    candidates.sort();
    candidates.pop()
}
