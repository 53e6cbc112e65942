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
use crate::target::Parameterization;
use crate::train::TrainConfig;
use burn::store::{FloatCastAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{DType, Device};
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde::de::DeserializeOwned;
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
    /// A tensor holds NaN or infinite values: the file was saved from a diverged run or damaged.
    NonFinite { name: String, count: usize },
    Load(String),
    Save(String),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CheckpointError::*;
        match self {
            Empty => write!(f, "the checkpoint file is empty"),
            NotSafetensors(e) => write!(f, "not a readable checkpoint (safetensors): {e}"),
            NotGeonoise => write!(f, "a safetensors file, but not a geonoise checkpoint (its metadata lacks {KEY_FORMAT} = {FORMAT})"),
            FutureVersion { found } => write!(f, "checkpoint format version {found} is newer than this build reads (version {VERSION}); update geonoise"),
            BadConfig(e) => write!(f, "the checkpoint's config is invalid: {e}"),
            WrongDim { file, expected } => write!(f, "the checkpoint is for D = {file}, but D = {expected} was asked for"),
            Mismatch(e) => write!(f, "the checkpoint does not match: {e}"),
            Shape { name, found, expected } => write!(f, "tensor '{name}' has shape {found:?} but its config needs {expected:?}"),
            MissingTensor(n) => write!(f, "tensor '{n}' is missing from the checkpoint"),
            UnexpectedTensor(n) => write!(f, "tensor '{n}' is not part of this architecture"),
            Dtype { name, found } => write!(f, "tensor '{name}' is stored as {found}; checkpoints hold F32 or F16"),
            NonFinite { name, count } => write!(f, "tensor '{name}' holds {count} NaN or infinite values: the weights are damaged or come from a run that diverged"),
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

/// What a caller needs a checkpoint to be; `None` fields accept anything. The page asks a
/// pretrained file for its panel's model and D, and a resumed training run for its whole
/// architecture.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Expected {
    pub model: Option<Parameterization>,
    pub blind: Option<bool>,
    pub dim: Option<usize>,
    pub width: Option<usize>,
    pub depth: Option<usize>,
}

impl Expected {
    /// Any checkpoint.
    pub fn any() -> Self {
        Expected::default()
    }

    /// Exactly the architecture of `config` (everything but the time range and projection seed).
    pub fn config(config: &ModelConfig) -> Self {
        Expected { model: Some(config.model), blind: Some(config.blind), dim: Some(config.dim), width: Some(config.width), depth: Some(config.depth) }
    }

    /// Checks a file's config; the error names what differs.
    pub fn check(&self, file: &ModelConfig) -> Result<(), CheckpointError> {
        if let Some(d) = self.dim {
            if d != file.dim {
                return Err(CheckpointError::WrongDim { file: file.dim, expected: d });
            }
        }
        let kind = |m: Parameterization, b: bool| format!("{m} {}", if b { "blind" } else { "conditional" });
        let model = self.model.unwrap_or(file.model);
        let blind = self.blind.unwrap_or(file.blind);
        if (model, blind) != (file.model, file.blind) {
            return Err(CheckpointError::Mismatch(format!("the file holds a {} model, expected {}", kind(file.model, file.blind), kind(model, blind))));
        }
        let width = self.width.unwrap_or(file.width);
        let depth = self.depth.unwrap_or(file.depth);
        if (width, depth) != (file.width, file.depth) {
            return Err(CheckpointError::Mismatch(format!(
                "the file's network has width {} and depth {}, expected width {width} and depth {depth}",
                file.width, file.depth
            )));
        }
        Ok(())
    }
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
    let training = training.map(serde_json::to_value).transpose().map_err(|e| CheckpointError::Save(e.to_string()))?;
    write(&model.net, FORMAT, &model.config.resolved(), training.as_ref(), precision)
}

/// The bytes of a file of kind `format` holding `net`, with `config` and `training` as JSON in the
/// metadata: every kind of network the project stores (the toy's, the image experiment's).
pub(crate) fn write<M: ModuleSnapshot, C: Serialize>(net: &M, format: &str, config: &C, training: Option<&serde_json::Value>, precision: Precision) -> Result<Vec<u8>, CheckpointError> {
    let config = serde_json::to_string(config).map_err(|e| CheckpointError::Save(e.to_string()))?;
    let mut store = SafetensorsStore::from_bytes(None)
        .metadata(KEY_FORMAT, format)
        .metadata(KEY_VERSION, VERSION.to_string())
        .metadata(KEY_CONFIG, config);
    if let Some(info) = training {
        store = store.metadata(KEY_TRAINING, info.to_string());
    }
    if precision == Precision::F16 {
        store = store.with_to_adapter(FloatCastAdapter::to(DType::F16));
    }
    net.save_into(&mut store).map_err(|e| CheckpointError::Save(e.to_string()))?;
    store.get_bytes().map_err(|e| CheckpointError::Save(e.to_string()))
}

/// What a checkpoint's header says, read without touching the weights.
#[derive(Clone, Debug)]
pub struct Header {
    pub config: ModelConfig,
    pub training: Option<TrainingInfo>,
}

/// Says in words what a safetensors parse error means for the person holding the file.
fn unreadable(e: SafeTensorError) -> CheckpointError {
    use SafeTensorError::*;
    let why = match &e {
        HeaderTooSmall | HeaderTooLarge | InvalidHeaderLength | InvalidHeader(_) | InvalidHeaderDeserialization(_) | JsonError(_) => {
            "it does not start with a safetensors header"
        }
        MetadataIncompleteBuffer | InvalidOffset(_) | TensorInvalidInfo | InvalidTensorView(..) | ValidationOverflow | MisalignedSlice => {
            "its tensor data does not match its header (a truncated or damaged file?)"
        }
        _ => "it could not be parsed",
    };
    CheckpointError::NotSafetensors(format!("{why}: {e}"))
}

/// Counts the non-finite values of a stored F32 or F16 tensor without decoding it.
fn non_finite(dtype: Dtype, bytes: &[u8]) -> usize {
    match dtype {
        Dtype::F32 => bytes.chunks_exact(4).filter(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & 0x7f80_0000 == 0x7f80_0000).count(),
        Dtype::F16 => bytes.chunks_exact(2).filter(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7c00 == 0x7c00).count(),
        _ => 0,
    }
}

/// A file's safetensors view and its metadata, once its format (`format`) and version are
/// checked.
pub(crate) struct Raw<'a> {
    pub tensors: SafeTensors<'a>,
    pub metadata: HashMap<String, String>,
}

impl Raw<'_> {
    /// The metadata entry `key` read as JSON (`None` where it is absent).
    pub(crate) fn json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CheckpointError> {
        self.metadata.get(key).map(|j| serde_json::from_str(j).map_err(|e| CheckpointError::BadConfig(format!("{key}: {e}")))).transpose()
    }

    /// The config the file's architecture is built from.
    pub(crate) fn config<T: DeserializeOwned>(&self) -> Result<T, CheckpointError> {
        self.json(KEY_CONFIG)?.ok_or_else(|| CheckpointError::BadConfig("no config in the metadata".into()))
    }

    pub(crate) fn training<T: DeserializeOwned>(&self) -> Result<Option<T>, CheckpointError> {
        self.json(KEY_TRAINING).map_err(|e| match e {
            CheckpointError::BadConfig(m) => CheckpointError::BadConfig(format!("training info: {m}")),
            e => e,
        })
    }

    /// Every tensor's name, shape, dtype and finiteness against `expected`, and nothing more.
    pub(crate) fn check_tensors(&self, expected: &[(String, Vec<usize>)]) -> Result<(), CheckpointError> {
        let found: HashMap<String, _> = self.tensors.tensors().into_iter().collect();
        for (name, shape) in expected {
            let view = found.get(name).ok_or_else(|| CheckpointError::MissingTensor(name.clone()))?;
            if view.shape() != shape.as_slice() {
                return Err(CheckpointError::Shape { name: name.clone(), found: view.shape().to_vec(), expected: shape.clone() });
            }
            if !matches!(view.dtype(), Dtype::F32 | Dtype::F16) {
                return Err(CheckpointError::Dtype { name: name.clone(), found: format!("{:?}", view.dtype()) });
            }
            let bad = non_finite(view.dtype(), view.data());
            if bad > 0 {
                return Err(CheckpointError::NonFinite { name: name.clone(), count: bad });
            }
        }
        if let Some(extra) = found.keys().find(|k| !expected.iter().any(|(n, _)| n == *k)) {
            return Err(CheckpointError::UnexpectedTensor(extra.clone()));
        }
        Ok(())
    }
}

/// Parses a file's header and checks that it is a geonoise file of kind `format` in a version
/// this build reads. A geonoise file of another kind (an image model given for a toy one) is a
/// mismatch that names both.
pub(crate) fn read_header<'a>(bytes: &'a [u8], format: &str) -> Result<Raw<'a>, CheckpointError> {
    if bytes.is_empty() {
        return Err(CheckpointError::Empty);
    }
    let tensors = SafeTensors::deserialize(bytes).map_err(unreadable)?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(unreadable)?;
    let metadata: HashMap<String, String> = meta.metadata().clone().unwrap_or_default();
    match metadata.get(KEY_FORMAT).map(String::as_str) {
        Some(f) if f == format => {}
        Some(other) if other.starts_with("geonoise") => {
            return Err(CheckpointError::Mismatch(format!("the file holds a {other}, expected a {format}")));
        }
        _ => return Err(CheckpointError::NotGeonoise),
    }
    let version = metadata.get(KEY_VERSION).cloned().unwrap_or_default();
    match version.parse::<u32>() {
        Ok(v) if (1..=VERSION).contains(&v) => {}
        Ok(v) if v > VERSION => return Err(CheckpointError::FutureVersion { found: version }),
        _ => return Err(CheckpointError::BadConfig(format!("unreadable format version '{version}'"))),
    }
    Ok(Raw { tensors, metadata })
}

/// Applies a checked file's weights (F32 or F16 on disk) to `net`.
pub(crate) fn apply<M: ModuleSnapshot>(net: &mut M, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()))
        .validate(true)
        .allow_partial(false)
        .with_from_adapter(FloatCastAdapter::to(DType::F32));
    let result = net.load_from(&mut store).map_err(|e| CheckpointError::Load(e.to_string()))?;
    if !result.errors.is_empty() {
        return Err(CheckpointError::Load(format!("{:?}", result.errors)));
    }
    Ok(())
}

/// Reads and validates the header: format, version, config, and every tensor's name, shape and
/// dtype against the architecture the config describes, and that every weight is finite.
pub fn inspect(bytes: &[u8]) -> Result<Header, CheckpointError> {
    let raw = read_header(bytes, FORMAT)?;
    let config: ModelConfig = raw.config()?;
    config.validate().map_err(CheckpointError::BadConfig)?;
    let training = raw.training()?;
    raw.check_tensors(&expected_tensors(&config))?;
    Ok(Header { config, training })
}

/// Loads a checkpoint onto `device`; the file must be what `expect` asks for.
pub fn load(bytes: &[u8], device: &Device, expect: &Expected) -> Result<(Model, Header), CheckpointError> {
    let header = inspect(bytes)?;
    expect.check(&header.config)?;
    let mut net = Net::init(&header.config, 0, device);
    apply(&mut net, bytes)?;
    Ok((Model::from_net(header.config.clone(), net), header))
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
        let (back, header) = load(&bytes, &Device::flex(), &Expected::config(&cfg)).unwrap();
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
        let (back, _) = load(&half, &Device::flex(), &Expected::any()).unwrap();
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
        assert_eq!(cfg.param_count(), want.iter().map(|(_, shape)| shape.iter().product::<usize>()).sum::<usize>());
    }

    #[test]
    fn bad_files_give_specific_errors() {
        let cfg = small(Parameterization::Fm, true, 8);
        let bytes = save(&model(&cfg, 1), None).unwrap();
        let dev = Device::flex();
        let err = |b: &[u8], e: Option<&ModelConfig>| load(b, &dev, &e.map(Expected::config).unwrap_or_default()).err().expect("should fail");

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
        assert!(matches!(load(&future, &dev, &Expected::any()).err().unwrap(), CheckpointError::FutureVersion { .. }));
        // Config claims D = 16 while the weights are for D = 8.
        let lying = with_metadata(&bytes, |m| {
            let mut c: ModelConfig = serde_json::from_str(&m[KEY_CONFIG]).unwrap();
            c.dim = 16;
            m.insert(KEY_CONFIG.into(), serde_json::to_string(&c).unwrap());
        });
        let e = load(&lying, &dev, &Expected::any()).err().unwrap();
        assert!(matches!(&e, CheckpointError::Shape { name, .. } if name == "input.weight"), "{e}");
        let wider = with_metadata(&bytes, |m| {
            let mut c: ModelConfig = serde_json::from_str(&m[KEY_CONFIG]).unwrap();
            c.depth = 3;
            m.insert(KEY_CONFIG.into(), serde_json::to_string(&c).unwrap());
        });
        assert!(matches!(load(&wider, &dev, &Expected::any()).err().unwrap(), CheckpointError::MissingTensor(_)));
        let broken = with_metadata(&bytes, |m| {
            m.insert(KEY_CONFIG.into(), "{not json".into());
        });
        assert!(matches!(load(&broken, &dev, &Expected::any()).err().unwrap(), CheckpointError::BadConfig(_)));
        let bad_dim = with_metadata(&bytes, |m| {
            let mut c: ModelConfig = serde_json::from_str(&m[KEY_CONFIG]).unwrap();
            c.dim = 0;
            m.insert(KEY_CONFIG.into(), serde_json::to_string(&c).unwrap());
        });
        assert!(matches!(load(&bad_dim, &dev, &Expected::any()).err().unwrap(), CheckpointError::BadConfig(_)));
    }

    #[test]
    fn wrong_architecture_and_damaged_weights_are_named() {
        let cfg = small(Parameterization::Fm, true, 8);
        let bytes = save(&model(&cfg, 1), None).unwrap();
        let dev = Device::flex();
        let e = load(&bytes, &dev, &Expected { width: Some(32), ..Expected::any() }).err().unwrap();
        assert_eq!(e.to_string(), "the checkpoint does not match: the file's network has width 16 and depth 2, expected width 32 and depth 2");
        let e = load(&bytes, &dev, &Expected { depth: Some(3), ..Expected::any() }).err().unwrap();
        assert!(e.to_string().contains("expected width 16 and depth 3"), "{e}");
        let e = load(&bytes, &dev, &Expected { model: Some(Parameterization::Ddpm), blind: Some(false), ..Expected::any() }).err().unwrap();
        assert_eq!(e.to_string(), "the checkpoint does not match: the file holds a fm blind model, expected ddpm conditional");
        // Only what is asked for is checked.
        assert!(load(&bytes, &dev, &Expected { dim: Some(8), ..Expected::any() }).is_ok());

        // A NaN written into the weights (f32 and f16 files alike).
        for precision in [Precision::F32, Precision::F16] {
            let bytes = save_as(&model(&cfg, 1), None, precision).unwrap();
            let st = SafeTensors::deserialize(&bytes).unwrap();
            let view = st.tensor("blocks.1.fc2.weight").unwrap();
            let at = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
            let mut bad = bytes.clone();
            let nan: &[u8] = if precision == Precision::F32 { &f32::NAN.to_le_bytes() } else { &[0x00, 0x7e] };
            bad[at..at + nan.len()].copy_from_slice(nan);
            let e = load(&bad, &dev, &Expected::any()).err().unwrap();
            assert_eq!(e, CheckpointError::NonFinite { name: "blocks.1.fc2.weight".into(), count: 1 }, "{precision:?}");
        }
    }

    #[test]
    fn unreadable_files_say_why_in_words() {
        let cfg = small(Parameterization::Fm, true, 8);
        let bytes = save(&model(&cfg, 1), None).unwrap();
        let dev = Device::flex();
        let msg = |b: &[u8]| load(b, &dev, &Expected::any()).err().unwrap().to_string();
        assert!(msg(&bytes[..bytes.len() - 10]).contains("does not match its header (a truncated or damaged file?)"), "{}", msg(&bytes[..bytes.len() - 10]));
        assert!(msg(&bytes[..5]).contains("does not start with a safetensors header"));
        assert!(msg(b"<!doctype html><html>not found</html>").contains("does not start with a safetensors header"));
        assert_eq!(msg(&[]), "the checkpoint file is empty");
    }

    /// 100 MB inputs: random bytes, and a well-formed geonoise file whose one tensor is huge.
    /// Both are refused from the header, without touching (or copying) the data.
    #[test]
    fn hundred_megabyte_files_are_refused_quickly() {
        let dev = Device::flex();
        let mut rng = crate::rng::Rng::new(7);
        let mut big: Vec<u8> = vec![0; 100 << 20];
        for c in big.chunks_mut(8) {
            c.copy_from_slice(&rng.next_u64().to_le_bytes()[..c.len()]);
        }
        let t = std::time::Instant::now();
        assert!(matches!(load(&big, &dev, &Expected::any()).err().unwrap(), CheckpointError::NotSafetensors(_)));
        let cfg = small(Parameterization::Fm, true, 8);
        let saved = save(&model(&cfg, 1), None).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&saved).unwrap();
        let huge = vec![0u8; 100 << 20];
        let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![25 << 20], &huge).unwrap();
        let file = safetensors::serialize([("input.weight", view)], meta.metadata().clone()).unwrap();
        let e = load(&file, &dev, &Expected::any()).err().unwrap();
        assert!(matches!(&e, CheckpointError::Shape { name, .. } if name == "input.weight"), "{e}");
        // Generous: this guards against a parse that copies or decodes the data, not for speed.
        assert!(t.elapsed().as_secs() < 30, "{:?}", t.elapsed());
    }

    mod fuzz {
        //! The loader against mutated real checkpoints: any input gives `Ok` or an error, never a
        //! panic (a panic in the browser kills the engine). `PROPTEST_CASES` sets the count.
        use super::*;
        use proptest::prelude::*;
        use std::sync::OnceLock;

        /// Real files: f32 and f16, blind and conditional, with training info.
        fn seeds() -> &'static Vec<Vec<u8>> {
            static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
            SEEDS.get_or_init(|| {
                let a = small(Parameterization::Fm, true, 4);
                let b = ModelConfig { depth: 1, ..small(Parameterization::Ddpm, false, 3) };
                let info = TrainingInfo { train: TrainConfig::new(b.clone()), steps_done: 9, final_loss: Some(0.25) };
                vec![
                    save(&model(&a, 1), None).unwrap(),
                    save_as(&model(&b, 2), Some(&info), Precision::F16).unwrap(),
                ]
            })
        }

        #[derive(Clone, Debug)]
        enum Edit {
            /// Overwrite one byte (positions past the end wrap).
            Set(usize, u8),
            /// Swap one ASCII digit of the JSON header for another: shapes, offsets, D, width...
            Digit(usize, u8),
            Truncate(usize),
            Insert(usize, Vec<u8>),
            Remove(usize, usize),
        }

        fn edit() -> impl Strategy<Value = Edit> {
            // Length-keeping edits weigh most: they get past the safetensors layer into ours.
            prop_oneof![
                4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
                4 => (any::<usize>(), 0u8..10).prop_map(|(i, d)| Edit::Digit(i, d)),
                1 => any::<usize>().prop_map(Edit::Truncate),
                1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Edit::Insert(i, v)),
                1 => (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Remove(i, n)),
            ]
        }

        fn apply(bytes: &mut Vec<u8>, e: &Edit) {
            let n = bytes.len().max(1);
            match e {
                Edit::Set(i, b) => {
                    if !bytes.is_empty() {
                        bytes[i % n] = *b
                    }
                }
                Edit::Digit(i, d) => {
                    let header = bytes.get(..8).map(|h| u64::from_le_bytes(h.try_into().unwrap()) as usize).unwrap_or(0);
                    let end = (8 + header).min(bytes.len());
                    let digits: Vec<usize> = (8..end).filter(|&j| bytes[j].is_ascii_digit()).collect();
                    if !digits.is_empty() {
                        bytes[digits[i % digits.len()]] = b'0' + d;
                    }
                }
                Edit::Truncate(i) => bytes.truncate(i % n),
                Edit::Insert(i, v) => {
                    let at = i % n;
                    bytes.splice(at..at, v.iter().copied());
                }
                Edit::Remove(i, k) => {
                    let at = i % n;
                    let to = (at + k).min(bytes.len());
                    bytes.drain(at..to);
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]
            #[test]
            fn mutated_checkpoints_never_panic(which in 0usize..2, edits in proptest::collection::vec(edit(), 1..4)) {
                let mut bytes = seeds()[which].clone();
                for e in &edits {
                    apply(&mut bytes, e);
                }
                let dev = Device::flex();
                match load(&bytes, &dev, &Expected::any()) {
                    // A mutation that kept the file valid (e.g. a digit of a weight) loads a model
                    // that must also run.
                    Ok((m, _)) => {
                        let u = Tensor::<2>::ones([2, m.config.dim], &dev);
                        let out = read_f32(m.eval(u, 0.5));
                        prop_assert_eq!(out.len(), 2 * m.config.dim);
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }
        }
    }
}
