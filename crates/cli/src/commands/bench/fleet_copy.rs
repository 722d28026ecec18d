//! The benchmark runs its fleet from a copy of the workload file's directory, so that the file
//! corruption it injects never touches the originals in the repository.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Copies the regular files of the directory of `workloads` (not its subdirectories) into
/// `into`, and returns the path of the copied workload file. Declared files that the workload
/// file names with a path outside its directory are not copied and stay the originals.
pub(super) fn copy(workloads: &Path, into: &Path) -> anyhow::Result<PathBuf> {
    let source = workloads.parent().unwrap_or(Path::new("."));
    let name = workloads
        .file_name()
        .with_context(|| format!("workload file {} has no file name", workloads.display()))?;
    std::fs::create_dir_all(into)
        .with_context(|| format!("failed to create {}", into.display()))?;
    let entries = std::fs::read_dir(source)
        .with_context(|| format!("failed to list {}", source.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", source.display()))?;
        if !entry.file_type().is_ok_and(|kind| kind.is_file()) {
            continue;
        }
        let target = into.join(entry.file_name());
        std::fs::copy(entry.path(), &target).with_context(|| {
            format!(
                "failed to copy {} to {}",
                entry.path().display(),
                target.display()
            )
        })?;
    }
    let copied = into.join(name);
    anyhow::ensure!(
        copied.is_file(),
        "workload file {} was not found",
        workloads.display()
    );
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory under the system's temporary directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!("aro-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("creating a scratch directory");
            Self(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn copy_takes_the_files_beside_the_workload_file() {
        let scratch = Scratch::new("fleet-copy");
        let source = scratch.0.join("source");
        std::fs::create_dir_all(source.join("nested")).expect("creating directories");
        std::fs::write(source.join("fleet.toml"), "[[workload]]\n").expect("writing");
        std::fs::write(source.join("data.txt"), "records\n").expect("writing");
        std::fs::write(source.join("nested/skipped.txt"), "not copied\n").expect("writing");

        let copy = copy(&source.join("fleet.toml"), &scratch.0.join("copy")).expect("copying");
        assert_eq!(copy, scratch.0.join("copy/fleet.toml"));
        let data = std::fs::read_to_string(scratch.0.join("copy/data.txt")).expect("copied");
        assert_eq!(data, "records\n");
        assert!(!scratch.0.join("copy/nested").exists());
    }

    #[test]
    fn missing_workload_file_is_named() {
        let scratch = Scratch::new("fleet-copy-missing");
        let error = copy(&scratch.0.join("absent.toml"), &scratch.0.join("copy"))
            .expect_err("no workload file");
        assert!(error.to_string().contains("absent.toml"), "{error}");
    }
}
