//! Flags and start-up shared by `demo` and `bench`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use aro_stack::{Engine, Service, StackConfig};

/// Flags shared by `demo` and `bench`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LocalArgs {
    /// Workload file of the fleet. Default: `deploy/local/fleet.toml` in the repository.
    #[arg(long, env = "ARO_WORKLOADS")]
    pub(crate) workloads: Option<PathBuf>,

    /// Policy model. Default: `models/policy.onnx` in the repository.
    #[arg(long, env = "ARO_POLICY_MODEL")]
    pub(crate) model: Option<PathBuf>,

    /// Directory for logs and the JetStream store. Default: `.run/<command>-<pid>` in the
    /// repository.
    #[arg(long)]
    pub(crate) run_dir: Option<PathBuf>,

    /// How long one incident may take from injection to recovery.
    #[arg(long, default_value = "30s", value_parser = aro_service::humantime_duration)]
    pub(crate) incident_timeout: Duration,
}

/// Starts a local engine with the binaries beside this executable.
pub(crate) async fn start(
    args: &LocalArgs,
    command: &str,
    extra_args: HashMap<Service, Vec<String>>,
) -> anyhow::Result<(Engine, PathBuf)> {
    let root = aro_stack::repository_root()
        .context("run aro from inside the repository, or set ARO_ROOT")?;
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("the executable has a directory")?
        .to_owned();
    let run_dir = args.run_dir.clone().unwrap_or_else(|| {
        root.join(".run")
            .join(format!("{command}-{}", std::process::id()))
    });
    let config = StackConfig {
        bin_dir,
        run_dir: run_dir.clone(),
        workloads: args
            .workloads
            .clone()
            .unwrap_or_else(|| root.join("deploy/local/fleet.toml")),
        model: args
            .model
            .clone()
            .unwrap_or_else(|| root.join("models/policy.onnx")),
        onnxruntime: aro_stack::find_onnxruntime(),
        enable_chaos: true,
        extra_args,
        log_filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
    };
    let engine = Engine::start(config).await.with_context(|| {
        format!(
            "starting the local stack; logs are in {}",
            run_dir.display()
        )
    })?;
    Ok((engine, run_dir))
}
