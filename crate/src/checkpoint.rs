//! Checkpoints: model weights plus the config that made them, in one safetensors file.
//!
//! Why safetensors: it is the format researchers already load (`safetensors.numpy.load_file`,
//! PyTorch), its header is plain JSON that can be validated before any tensor is touched, and it
//! carries a string map of metadata, where we keep:
//!
//! | key | value |
//! |---|---|
//! | `geonoise.format` | `geonoise-checkpoint` |
//! | `geonoise.version` | format version, currently `1` |
//! | `geonoise.config` | the `ModelConfig` as JSON (parameterization, blind, D, width, depth, t range, projection seed) |
//! | `geonoise.training` | the `TrainingInfo` as JSON (the `TrainConfig`, steps done, final loss), if trained |
//!
//! Tensor names follow the module tree: `input.weight` [D, W], `blocks.{i}.fc1.weight` [W, W],
//! `blocks.{i}.time.weight` [32, W], `blocks.{i}.fc2.weight` [W, W], `output.weight` [W, D],
//! `gain.weight` [W, 1], each with its `.bias`. Loading checks the header against the config before applying anything, so a
//! wrong D, a wrong shape, a truncated or foreign file is a specific error, never a panic.

use crate::model::{Model, ModelConfig, Net, TIME_FEATURES};
use crate::train::TrainConfig;
use burn::store::{FloatCastAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{DType, Device};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

pub const FORMAT: &str = "geonoise-checkpoint";
pub const VERSION: u32 = 1;
const KEY_FORMAT: &str = "geonoise.format";
const KEY_VERSION: &str = "geonoise.version";
const KEY_CONFIG: &str = "geonoise.config";
const KEY_TRAINING: &str = "geonoise.training";

/// How a checkpoint's weights were made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    pub train: TrainConfig,
    pub steps_done: usize,
    pub final_loss: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointError {
    Empty,
    /// Not a safetensors file, or its header is cut short or inconsistent.
    NotSafetensors(String),
    /// A safetensors file without geonoise metadata.
    NotGeonoise,
    FutureVersion { found: String },
    BadConfig(String),
    /// The file's config is for another D than the caller asked for.
    WrongDim { file: usize, expected: usize },
    /// The file's config differs from what the caller asked for (e.g. another parameterization).
    Mismatch(String),
    /// A tensor in the file disagrees with the architecture its config describes.
    Shape { name: String, found: Vec<usize>, expected: Vec<usize> },
    MissingTensor(String),
    UnexpectedTensor(String),
    Dtype { name: String, found: String },
    Load(String),
    Save(String),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CheckpointError::*;
        match self {
            Empty => write!(f, "the checkpoint file is empty"),
            NotSafetensors(e) => write!(f, "not a readable checkpoint (safetensors): {e}"),
            NotGeonoise => write!(f, "a safetensors file, but not a geonoise checkpoint (no '{KEY_FORMAT}' metadata)"),
            FutureVersion { found } => write!(f, "checkpoint format version {found} is newer than this build reads (version {VERSION}); update geonoise"),
            BadConfig(e) => write!(f, "the checkpoint's config is invalid: {e}"),
            WrongDim { file, expected } => write!(f, "the checkpoint is for D = {file}, but D = {expected} was asked for"),
            Mismatch(e) => write!(f, "the checkpoint does not match: {e}"),
            Shape { name, found, expected } => write!(f, "tensor '{name}' has shape {found:?} but its config needs {expected:?}"),
            MissingTensor(n) => write!(f, "tensor '{n}' is missing from the checkpoint"),
            UnexpectedTensor(n) => write!(f, "tensor '{n}' is not part of this architecture"),
            Dtype { name, found } => write!(f, "tensor '{name}' is stored as {found}; checkpoints hold F32 or F16"),
            Load(e) => write!(f, "could not load the weights: {e}"),
            Save(e) => write!(f, "could not save the checkpoint: {e}"),
        }
    }
}

impl std::error::Error for CheckpointError {}

/// The tensors the architecture of `config` has, with their shapes.
pub fn expected_tensors(config: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (d, w) = (config.dim, config.width);
    let mut v = vec![("input.weight".to_string(), vec![d, w]), ("input.bias".to_string(), vec![w])];
    for i in 0..config.depth {
        for (layer, fan_in) in [("fc1", w), ("time", TIME_FEATURES), ("fc2", w)] {
            v.push((format!("blocks.{i}.{layer}.weight"), vec![fan_in, w]));
            v.push((format!("blocks.{i}.{layer}.bias"), vec![w]));
        }
    }
    v.push(("output.weight".to_string(), vec![w, d]));
    v.push(("output.bias".to_string(), vec![d]));
    v.push(("gain.weight".to_string(), vec![w, 1]));
    v.push(("gain.bias".to_string(), vec![1]));
    v
}

/// How weights are stored on disk. Loading always gives float32 weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
pub enum Precision {
    F32,
    /// Half the size; the toy models' samples move by well under 1e-2 (see the tests).
    F16,
}

/// Serialise a model (weights read back synchronously: native, or Flex in the browser).
pub fn save(model: &Model, training: Option<&TrainingInfo>) -> Result<Vec<u8>, CheckpointError> {
    save_as(model, training, Precision::F32)
}

/// Serialise a model with its weights stored at `precision`.
pub fn save_as(model: &Model, training: Option<&TrainingInfo>, precision: Precision) -> Result<Vec<u8>, CheckpointError> {
    let config = serde_json::to_string(&model.config.resolved()).map_err(|e| CheckpointError::Save(e.to_string()))?;
    let mut store = SafetensorsStore::from_bytes(None)
        .metadata(KEY_FORMAT, FORMAT)
        .metadata(KEY_VERSION, VERSION.to_string())
        .metadata(KEY_CONFIG, config);
    if let Some(info) = training {
        let json = serde_json::to_string(info).map_err(|e| CheckpointError::Save(e.to_string()))?;
        store = store.metadata(KEY_TRAINING, json);
    }
    if precision == Precision::F16 {
        store = store.with_to_adapter(FloatCastAdapter::to(DType::F16));
    }
    model.net.save_into(&mut store).map_err(|e| CheckpointError::Save(e.to_string()))?;
    store.get_bytes().map_err(|e| CheckpointError::Save(e.to_string()))
}

/// What a checkpoint's header says, read without touching the weights.
#[derive(Clone, Debug)]
pub struct Header {
    pub config: ModelConfig,
    pub training: Option<TrainingInfo>,
}

/// Reads and validates the header: format, version, config, and every tensor's name, shape and
/// dtype against the architecture the config describes.
pub fn inspect(bytes: &[u8]) -> Result<Header, CheckpointError> {
    if bytes.is_empty() {
        return Err(CheckpointError::Empty);
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::NotSafetensors(format!("{e:?}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::NotSafetensors(format!("{e:?}")))?;
    let md: HashMap<String, String> = meta.metadata().clone().unwrap_or_default();
    if md.get(KEY_FORMAT).map(String::as_str) != Some(FORMAT) {
        return Err(CheckpointError::NotGeonoise);
    }
    let version = md.get(KEY_VERSION).cloned().unwrap_or_default();
    match version.parse::<u32>() {
        Ok(v) if v <= VERSION && v >= 1 => {}
        Ok(v) if v > VERSION => return Err(CheckpointError::FutureVersion { found: version }),
        _ => return Err(CheckpointError::BadConfig(format!("unreadable format version '{version}'"))),
    }
    let config_json = md.get(KEY_CONFIG).ok_or_else(|| CheckpointError::BadConfig("no config in the metadata".into()))?;
    let config: ModelConfig = serde_json::from_str(config_json).map_err(|e| CheckpointError::BadConfig(e.to_string()))?;
    config.validate().map_err(CheckpointError::BadConfig)?;
    let training = match md.get(KEY_TRAINING) {
        Some(j) => Some(serde_json::from_str(j).map_err(|e| CheckpointError::BadConfig(format!("training info: {e}")))?),
        None => None,
    };

    let expected = expected_tensors(&config);
    let found: HashMap<String, _> = st.tensors().into_iter().collect();
    for (name, shape) in &expected {
        let view = found.get(name).ok_or_else(|| CheckpointError::MissingTensor(name.clone()))?;
        if view.shape() != shape.as_slice() {
            return Err(CheckpointError::Shape { name: name.clone(), found: view.shape().to_vec(), expected: shape.clone() });
        }
        if !matches!(view.dtype(), Dtype::F32 | Dtype::F16) {
            return Err(CheckpointError::Dtype { name: name.clone(), found: format!("{:?}", view.dtype()) });
        }
    }
    if let Some(extra) = found.keys().find(|k| !expected.iter().any(|(n, _)| n == *k)) {
        return Err(CheckpointError::UnexpectedTensor(extra.clone()));
    }
    Ok(Header { config, training })
}

/// Loads a checkpoint onto `device`. With `expect`, the file must match its D (and, where given,
/// its parameterization and blindness).
pub fn load(bytes: &[u8], device: &Device, expect: Option<&ModelConfig>) -> Result<(Model, Header), CheckpointError> {
    let header = inspect(bytes)?;
    if let Some(want) = expect {
        if want.dim != header.config.dim {
            return Err(CheckpointError::WrongDim { file: header.config.dim, expected: want.dim });
        }
        if want.model != header.config.model || want.blind != header.config.blind {
            return Err(CheckpointError::Mismatch(format!(
                "file holds {}, expected {}",
                header.config.label(),
                want.label()
            )));
        }
    }
    let mut net = Net::init(&header.config, 0, device);
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()))
        .validate(true)
        .allow_partial(false)
        .with_from_adapter(FloatCastAdapter::to(DType::F32));
    let result = net.load_from(&mut store).map_err(|e| CheckpointError::Load(e.to_string()))?;
    if !result.errors.is_empty() {
        return Err(CheckpointError::Load(format!("{:?}", result.errors)));
    }
    Ok((Model { config: header.config.clone(), net }, header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::read_f32;
    use crate::target::Parameterization;
    use burn::tensor::Tensor;

    fn small(p: Parameterization, blind: bool, dim: usize) -> ModelConfig {
        ModelConfig { width: 16, depth: 2, ..ModelConfig::new(p, blind, dim) }
    }

    /// A model whose output layer is not zero, so outputs tell weights apart.
    fn model(cfg: &ModelConfig, seed: u64) -> Model {
        let device = Device::flex();
        let mut m = Model::new(cfg.clone(), seed, &device).unwrap();
        let mut rng = crate::rng::Rng::new(seed + 100);
        m.net.output = crate::model::linear(&mut rng, cfg.width, cfg.dim, false, &device);
        m.net.gain = crate::model::linear(&mut rng, cfg.width, 1, false, &device);
        m
    }

    #[test]
    fn round_trip_keeps_weights_and_config() {
        let cfg = small(Parameterization::Ddpm, false, 8);
        let m = model(&cfg, 3);
        let info = TrainingInfo { train: TrainConfig::new(cfg.clone()), steps_done: 12, final_loss: Some(0.5) };
        let bytes = save(&m, Some(&info)).unwrap();
        let (back, header) = load(&bytes, &Device::flex(), Some(&cfg)).unwrap();
        assert_eq!(header.config, cfg.resolved());
        assert_eq!(header.training.unwrap().steps_done, 12);
        let u = Tensor::<2>::ones([3, 8], &Device::flex());
        assert_eq!(read_f32(m.eval(u.clone(), 0.4)), read_f32(back.eval(u, 0.4)));
    }

    #[test]
    fn f16_halves_the_size_and_keeps_outputs_close() {
        let cfg = small(Parameterization::Fm, true, 8);
        let m = model(&cfg, 4);
        let full = save(&m, None).unwrap();
        let half = save_as(&m, None, Precision::F16).unwrap();
        assert!(half.len() < full.len() * 6 / 10, "{} vs {}", half.len(), full.len());
        let (back, _) = load(&half, &Device::flex(), None).unwrap();
        let u = Tensor::<2>::ones([4, 8], &Device::flex());
        let a = read_f32(m.eval(u.clone(), 0.2));
        let b = read_f32(back.eval(u, 0.2));
        let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(max < 1e-2, "f16 moved outputs by {max}");
        assert_ne!(a, b, "the weights were not rounded at all");
        let dtype = SafeTensors::deserialize(&half).unwrap().tensor("input.weight").unwrap().dtype();
        assert_eq!(dtype, Dtype::F16);
    }

    #[test]
    fn expected_tensors_match_the_module_tree() {
        let cfg = small(Parameterization::Fm, true, 5);
        let net = Net::init(&cfg, 0, &Device::flex());
        let mut collected: Vec<(String, Vec<usize>)> =
            net.collect(None, None, false).into_iter().map(|t| (t.name.clone(), t.shape.to_vec())).collect();
        let mut want = expected_tensors(&cfg);
        collected.sort();
        want.sort();
        assert_eq!(collected, want);
    }

    #[test]
    fn bad_files_give_specific_errors() {
        let cfg = small(Parameterization::Fm, true, 8);
        let bytes = save(&model(&cfg, 1), None).unwrap();
        let dev = Device::flex();
        let err = |b: &[u8], e: Option<&ModelConfig>| load(b, &dev, e).err().expect("should fail");

        assert_eq!(err(&[], None), CheckpointError::Empty);
        assert!(matches!(err(&bytes[..bytes.len() / 2], None), CheckpointError::NotSafetensors(_)));
        assert!(matches!(err(&bytes[..5], None), CheckpointError::NotSafetensors(_)));
        let mut rng = crate::rng::Rng::new(2);
        let garbage: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();
        assert!(matches!(err(&garbage, None), CheckpointError::NotSafetensors(_)));
        assert_eq!(err(&bytes, Some(&small(Parameterization::Fm, true, 16))), CheckpointError::WrongDim { file: 8, expected: 16 });
        assert!(matches!(err(&bytes, Some(&small(Parameterization::Ddpm, true, 8))), CheckpointError::Mismatch(_)));

        // A plain safetensors file with no geonoise metadata.
        let plain = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
        assert_eq!(err(&plain, None), CheckpointError::NotGeonoise);
    }

    /// Rewrites the metadata of a saved checkpoint.
    fn with_metadata(bytes: &[u8], edit: impl Fn(&mut HashMap<String, String>)) -> Vec<u8> {
        let st = SafeTensors::deserialize(bytes).unwrap();
        let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
        let mut md = meta.metadata().clone().unwrap();
        edit(&mut md);
        let tensors: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
        safetensors::serialize(tensors, Some(md)).unwrap()
    }

    #[test]
    fn config_and_shape_disagreements_are_caught_before_loading() {
        let cfg = small(Parameterization::Fm, true, 8);
        let bytes = save(&model(&cfg, 1), None).unwrap();
        let dev = Device::flex();
        let future = with_metadata(&bytes, |m| {
            m.insert(KEY_VERSION.into(), "99".into());
        });
        assert!(matches!(load(&future, &dev, None).err().unwrap(), CheckpointError::FutureVersion { .. }));
        // Config claims D = 16 while the weights are for D = 8.
        let lying = with_metadata(&bytes, |m| {
            let mut c: ModelConfig = serde_json::from_str(&m[KEY_CONFIG]).unwrap();
            c.dim = 16;
            m.insert(KEY_CONFIG.into(), serde_json::to_string(&c).unwrap());
        });
        let e = load(&lying, &dev, None).err().unwrap();
        assert!(matches!(&e, CheckpointError::Shape { name, .. } if name == "input.weight"), "{e}");
        let wider = with_metadata(&bytes, |m| {
            let mut c: ModelConfig = serde_json::from_str(&m[KEY_CONFIG]).unwrap();
            c.depth = 3;
            m.insert(KEY_CONFIG.into(), serde_json::to_string(&c).unwrap());
        });
        assert!(matches!(load(&wider, &dev, None).err().unwrap(), CheckpointError::MissingTensor(_)));
        let broken = with_metadata(&bytes, |m| {
            m.insert(KEY_CONFIG.into(), "{not json".into());
        });
        assert!(matches!(load(&broken, &dev, None).err().unwrap(), CheckpointError::BadConfig(_)));
        let bad_dim = with_metadata(&bytes, |m| {
            let mut c: ModelConfig = serde_json::from_str(&m[KEY_CONFIG]).unwrap();
            c.dim = 0;
            m.insert(KEY_CONFIG.into(), serde_json::to_string(&c).unwrap());
        });
        assert!(matches!(load(&bad_dim, &dev, None).err().unwrap(), CheckpointError::BadConfig(_)));
    }
}
