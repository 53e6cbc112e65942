//! Image networks on disk: one safetensors file per network, as the toy's checkpoints are
//! (`checkpoint.rs`), with the config that builds the architecture in the metadata:
//!
//! | key | value |
//! |---|---|
//! | `geonoise.format` | `geonoise-unet` or `geonoise-classifier` |
//! | `geonoise.version` | `1` |
//! | `geonoise.config` | the network's config as JSON (`UNetConfig`, `ClassifierConfig`) |
//! | `geonoise.training` | how it was trained, as JSON, if it was |
//!
//! Tensor names follow the module tree (`down.0.block.conv1.weight`, …). Loading checks every
//! tensor's name, shape, dtype and finiteness against a network built from the config before
//! anything is applied, so a damaged or foreign file is an error that says what is wrong.

use crate::checkpoint::{non_finite, unreadable, CheckpointError, Precision};
use burn::module::Module;
use burn::store::{FloatCastAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{DType, Device};
use safetensors::{Dtype, SafeTensors};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;

const KEY_FORMAT: &str = "geonoise.format";
const KEY_VERSION: &str = "geonoise.version";
const KEY_CONFIG: &str = "geonoise.config";
const KEY_TRAINING: &str = "geonoise.training";
pub const VERSION: u32 = 1;

/// A network that lives in a file of its own kind.
pub trait Stored: Module + Sized {
    type Config: Serialize + DeserializeOwned + Clone;
    /// The `geonoise.format` of its files.
    const FORMAT: &'static str;
    fn build(config: &Self::Config, device: &Device) -> Result<Self, String>;
}

/// The bytes of a file holding `net`, built from `config`, with `training` (any JSON) if given.
pub fn save<M: Stored>(net: &M, config: &M::Config, training: Option<&serde_json::Value>, precision: Precision) -> Result<Vec<u8>, CheckpointError> {
    let json = |v: &dyn erased::Json| v.json().map_err(CheckpointError::Save);
    let mut store = SafetensorsStore::from_bytes(None)
        .metadata(KEY_FORMAT, M::FORMAT)
        .metadata(KEY_VERSION, VERSION.to_string())
        .metadata(KEY_CONFIG, json(config)?);
    if let Some(t) = training {
        store = store.metadata(KEY_TRAINING, t.to_string());
    }
    if precision == Precision::F16 {
        store = store.with_to_adapter(FloatCastAdapter::to(DType::F16));
    }
    net.save_into(&mut store).map_err(|e| CheckpointError::Save(e.to_string()))?;
    store.get_bytes().map_err(|e| CheckpointError::Save(e.to_string()))
}

mod erased {
    /// `serde_json::to_string` behind a trait object, so `save` takes any config.
    pub trait Json {
        fn json(&self) -> Result<String, String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<String, String> {
            serde_json::to_string(self).map_err(|e| e.to_string())
        }
    }
}

/// A file's config and training record, checked against the architecture the config builds.
pub struct Loaded<M: Stored> {
    pub net: M,
    pub config: M::Config,
    pub training: Option<serde_json::Value>,
}

/// Reads, validates and loads a file of kind `M` onto `device`.
pub fn load<M: Stored>(bytes: &[u8], device: &Device) -> Result<Loaded<M>, CheckpointError> {
    if bytes.is_empty() {
        return Err(CheckpointError::Empty);
    }
    let st = SafeTensors::deserialize(bytes).map_err(unreadable)?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(unreadable)?;
    let md: HashMap<String, String> = meta.metadata().clone().unwrap_or_default();
    match md.get(KEY_FORMAT).map(String::as_str) {
        Some(f) if f == M::FORMAT => {}
        Some(other) => return Err(CheckpointError::Mismatch(format!("the file holds a {other}, expected a {}", M::FORMAT))),
        None => return Err(CheckpointError::NotGeonoise),
    }
    let version = md.get(KEY_VERSION).cloned().unwrap_or_default();
    match version.parse::<u32>() {
        Ok(v) if (1..=VERSION).contains(&v) => {}
        Ok(v) if v > VERSION => return Err(CheckpointError::FutureVersion { found: version }),
        _ => return Err(CheckpointError::BadConfig(format!("unreadable format version '{version}'"))),
    }
    let config_json = md.get(KEY_CONFIG).ok_or_else(|| CheckpointError::BadConfig("no config in the metadata".into()))?;
    let config: M::Config = serde_json::from_str(config_json).map_err(|e| CheckpointError::BadConfig(e.to_string()))?;
    let training = match md.get(KEY_TRAINING) {
        Some(j) => Some(serde_json::from_str(j).map_err(|e| CheckpointError::BadConfig(format!("training info: {e}")))?),
        None => None,
    };
    let mut net = M::build(&config, device).map_err(CheckpointError::BadConfig)?;

    let expected: Vec<(String, Vec<usize>)> = net.collect(None, None, false).into_iter().map(|t| (t.name.clone(), t.shape.to_vec())).collect();
    let found: HashMap<String, _> = st.tensors().into_iter().collect();
    for (name, shape) in &expected {
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
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()))
        .validate(true)
        .allow_partial(false)
        .with_from_adapter(FloatCastAdapter::to(DType::F32));
    let result = net.load_from(&mut store).map_err(|e| CheckpointError::Load(e.to_string()))?;
    if !result.errors.is_empty() {
        return Err(CheckpointError::Load(format!("{:?}", result.errors)));
    }
    Ok(Loaded { net, config, training })
}
