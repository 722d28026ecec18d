//! The policy model run through ONNX Runtime. The session is loaded and checked once at
//! start-up and then owned by one inference thread, so inference never blocks the async
//! executor and the session is never shared between threads.

mod locate;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use aro_policy::{FEATURE_SCHEMA_VERSION, N_ACTIONS, N_FEATURES};
use ort::session::Session;
use ort::value::TensorRef;
use tokio::sync::oneshot;
use tracing::info;

pub use locate::locate_onnxruntime;

/// Name of the model's input tensor: float32 `[batch, N_FEATURES]`.
pub const INPUT_NAME: &str = "features";
/// Name of the model's output tensor: float32 `[batch, N_ACTIONS]`, action probabilities.
pub const OUTPUT_NAME: &str = "scores";

/// Errors of loading or running the policy model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(
        "ONNX Runtime library not found: set ORT_DYLIB_PATH to libonnxruntime.so, or run `make setup` to install it into .venv"
    )]
    LibraryNotFound,
    #[error("failed to load ONNX Runtime from {path}: {message}")]
    Library { path: PathBuf, message: String },
    #[error("failed to load the policy model {path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("policy model {path} does not fit: {message}")]
    Shape { path: PathBuf, message: String },
    #[error("policy inference failed: {0}")]
    Inference(String),
    #[error("the inference thread stopped")]
    Stopped,
}

/// Loaded and checked ONNX session; used from one thread at a time.
#[derive(Debug)]
pub struct PolicyModel {
    session: Session,
    version: String,
}

impl PolicyModel {
    /// Loads ONNX Runtime from `library` and the model from `path`, and checks that the model
    /// takes `[batch, N_FEATURES]` features, returns `[batch, N_ACTIONS]` scores and was trained
    /// on this feature schema version.
    ///
    /// # Errors
    ///
    /// Returns an error naming the library or the model and what is wrong with it.
    pub fn load(library: &Path, path: &Path) -> Result<Self, OnnxError> {
        let environment = environment(library)?;
        let model_error = |error: ort::Error| OnnxError::Model {
            path: path.to_owned(),
            message: error.to_string(),
        };
        let session = Session::builder(&environment)
            .map_err(model_error)?
            .with_intra_threads(1)
            .map_err(|error| model_error(error.into()))?
            .with_inter_threads(1)
            .map_err(|error| model_error(error.into()))?
            .commit_from_file(path)
            .map_err(model_error)?;

        let shape_error = |message: String| OnnxError::Shape {
            path: path.to_owned(),
            message,
        };
        check_outlet(session.inputs(), INPUT_NAME, N_FEATURES).map_err(shape_error)?;
        check_outlet(session.outputs(), OUTPUT_NAME, N_ACTIONS).map_err(shape_error)?;

        let metadata = session.metadata().map_err(model_error)?;
        let schema = metadata.custom("feature_schema_version");
        if schema.as_deref() != Some(FEATURE_SCHEMA_VERSION.to_string().as_str()) {
            return Err(shape_error(format!(
                "metadata feature_schema_version is {schema:?}, this brain needs {FEATURE_SCHEMA_VERSION}"
            )));
        }
        let version = metadata
            .custom("model_version")
            .unwrap_or_else(|| "unversioned".to_owned());
        drop(metadata);
        Ok(Self { session, version })
    }

    /// Version recorded in the model's metadata.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Runs the model on one feature vector and returns the action probabilities.
    ///
    /// # Errors
    ///
    /// Returns [`OnnxError::Inference`] when ONNX Runtime fails.
    pub fn score(&mut self, features: &[f32; N_FEATURES]) -> Result<[f32; N_ACTIONS], OnnxError> {
        let inference = |error: ort::Error| OnnxError::Inference(error.to_string());
        let input =
            TensorRef::from_array_view(([1usize, N_FEATURES], &features[..])).map_err(inference)?;
        let outputs = self
            .session
            .run(ort::inputs![INPUT_NAME => input])
            .map_err(inference)?;
        let (_, values) = outputs[OUTPUT_NAME]
            .try_extract_tensor::<f32>()
            .map_err(inference)?;
        let mut scores = [0.0; N_ACTIONS];
        if values.len() != N_ACTIONS {
            return Err(OnnxError::Inference(format!(
                "expected {N_ACTIONS} scores, the model returned {}",
                values.len()
            )));
        }
        scores.copy_from_slice(values);
        Ok(scores)
    }
}

/// Returns the process's ONNX Runtime environment, loading the library on first use. ONNX
/// Runtime allows one environment per process, so every model shares it.
fn environment(library: &Path) -> Result<ort::environment::Environment, OnnxError> {
    static ENVIRONMENT: std::sync::Mutex<Option<ort::environment::Environment>> =
        std::sync::Mutex::new(None);
    let mut environment = ENVIRONMENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(environment) = environment.as_ref() {
        return Ok(environment.clone());
    }
    let error = |error: String| OnnxError::Library {
        path: library.to_owned(),
        message: error,
    };
    let built = ort::init_from(library)
        .map_err(|e| error(e.to_string()))?
        .with_name("aro-brain")
        .build()
        .map_err(|e| error(e.to_string()))?;
    *environment = Some(built.clone());
    Ok(built)
}

fn check_outlet(outlets: &[ort::value::Outlet], name: &str, width: usize) -> Result<(), String> {
    let outlet = outlets
        .iter()
        .find(|outlet| outlet.name() == name)
        .ok_or_else(|| format!("no tensor named {name:?}"))?;
    let shape = outlet
        .dtype()
        .tensor_shape()
        .ok_or_else(|| format!("{name:?} is not a tensor"))?;
    let dims: Vec<i64> = shape.iter().copied().collect();
    if dims.len() != 2 || dims[1] != width as i64 {
        return Err(format!(
            "{name:?} has shape {dims:?}, expected [batch, {width}]"
        ));
    }
    Ok(())
}

struct Job {
    features: [f32; N_FEATURES],
    reply: oneshot::Sender<Result<[f32; N_ACTIONS], OnnxError>>,
}

/// Handle to the inference thread.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    jobs: mpsc::SyncSender<Job>,
    version: String,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

impl Policy {
    /// Moves `model` onto its own thread.
    pub(crate) fn spawn(mut model: PolicyModel) -> Self {
        let version = model.version().to_owned();
        let (jobs, receiver) = mpsc::sync_channel::<Job>(256);
        std::thread::Builder::new()
            .name("policy-inference".to_owned())
            .spawn(move || {
                while let Ok(job) = receiver.recv() {
                    // The requester may have given up; its reply is then dropped.
                    let _ = job.reply.send(model.score(&job.features));
                }
            })
            .expect("spawning the inference thread");
        info!(model_version = %version, "policy model loaded");
        Self { jobs, version }
    }

    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// Scores one feature vector on the inference thread.
    ///
    /// # Errors
    ///
    /// Returns an error when inference fails or the thread stopped.
    pub(crate) async fn score(
        &self,
        features: [f32; N_FEATURES],
    ) -> Result<[f32; N_ACTIONS], OnnxError> {
        let (reply, response) = oneshot::channel();
        self.jobs
            .try_send(Job { features, reply })
            .map_err(|_| OnnxError::Stopped)?;
        response.await.map_err(|_| OnnxError::Stopped)?
    }
}
