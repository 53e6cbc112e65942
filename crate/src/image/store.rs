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

use crate::checkpoint::{apply, read_header, write, CheckpointError, Precision};
use burn::module::Module;
use burn::store::ModuleSnapshot;
use burn::tensor::Device;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A network that lives in a file of its own kind.
pub trait Stored: Module + Sized {
    type Config: Serialize + DeserializeOwned + Clone;
    /// The `geonoise.format` of its files.
    const FORMAT: &'static str;
    fn build(config: &Self::Config, device: &Device) -> Result<Self, String>;
}

/// The bytes of a file holding `net`, built from `config`, with `training` (any JSON) if given.
pub fn save<M: Stored>(net: &M, config: &M::Config, training: Option<&serde_json::Value>, precision: Precision) -> Result<Vec<u8>, CheckpointError> {
    write(net, M::FORMAT, config, training, precision)
}

/// A file's network, with its config and training record.
pub struct Loaded<M: Stored> {
    pub net: M,
    pub config: M::Config,
    pub training: Option<serde_json::Value>,
}

/// Reads, validates and loads a file of kind `M` onto `device`: every tensor's name, shape,
/// dtype and finiteness is checked against a network built from the file's config first.
pub fn load<M: Stored>(bytes: &[u8], device: &Device) -> Result<Loaded<M>, CheckpointError> {
    let raw = read_header(bytes, M::FORMAT)?;
    let config: M::Config = raw.config()?;
    let training = raw.training()?;
    let mut net = M::build(&config, device).map_err(CheckpointError::BadConfig)?;
    let expected: Vec<(String, Vec<usize>)> = net.collect(None, None, false).into_iter().map(|t| (t.name.clone(), t.shape.to_vec())).collect();
    raw.check_tensors(&expected)?;
    apply(&mut net, bytes)?;
    Ok(Loaded { net, config, training })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::classifier::{Classifier, ClassifierConfig};
    use crate::image::idx::DataName;
    use crate::image::unet::{UNet, UNetConfig};
    use crate::target::Parameterization;

    fn small() -> UNetConfig {
        UNetConfig { channels: 8, mults: vec![1, 2], side: 8, patch: 2, ..UNetConfig::new(Parameterization::Ddpm, false) }
    }

    #[test]
    fn round_trip_and_each_kind_of_bad_file_is_named() {
        let device = Device::flex();
        let cfg = small();
        let net = UNet::init(&cfg, 3, &device);
        let training = serde_json::json!({"steps_done": 7});
        let bytes = save(&net, &cfg, Some(&training), Precision::F32).unwrap();
        let back = load::<UNet>(&bytes, &device).unwrap();
        assert_eq!(back.config, cfg);
        assert_eq!(back.training, Some(training));
        let w = |n: &UNet| n.output.weight.val().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(w(&back.net), w(&net));

        // Another kind of geonoise file: named, not "not geonoise".
        let c = ClassifierConfig { channels: 4, features: 8, side: 8, data: DataName::Mnist };
        let clf = save(&Classifier::init(&c, 0, &device), &c, None, Precision::F16).unwrap();
        let e = load::<UNet>(&clf, &device).err().unwrap();
        assert!(matches!(&e, CheckpointError::Mismatch(m) if m.contains("geonoise-classifier") && m.contains("geonoise-unet")), "{e}");
        let toy = crate::checkpoint::save(&crate::model::Model::new(crate::model::ModelConfig::new(Parameterization::Fm, true, 4), 0, &device).unwrap(), None).unwrap();
        assert!(matches!(load::<UNet>(&toy, &device).err().unwrap(), CheckpointError::Mismatch(_)));
        assert!(matches!(crate::checkpoint::load(&bytes, &device, &crate::checkpoint::Expected::any()).err().unwrap(), CheckpointError::Mismatch(_)));

        assert!(matches!(load::<UNet>(&bytes[..bytes.len() - 10], &device).err().unwrap(), CheckpointError::NotSafetensors(_)));
        assert_eq!(load::<UNet>(&[], &device).err().unwrap(), CheckpointError::Empty);
        // A config that builds another architecture than the weights: the first tensor that
        // differs is named.
        let wider = save(&net, &UNetConfig { channels: 16, ..cfg.clone() }, None, Precision::F32).unwrap();
        assert!(matches!(load::<UNet>(&wider, &device).err().unwrap(), CheckpointError::Shape { .. }));
        let bad = save(&net, &UNetConfig { patch: 3, ..cfg.clone() }, None, Precision::F32).unwrap();
        assert!(matches!(load::<UNet>(&bad, &device).err().unwrap(), CheckpointError::BadConfig(_)));
        // A NaN among the weights.
        let mut poisoned = net.clone();
        poisoned.input.bias = poisoned.input.bias.map(|b| b.map(|t| t.mul_scalar(f32::NAN)));
        let nan = save(&poisoned, &cfg, None, Precision::F16).unwrap();
        assert!(matches!(load::<UNet>(&nan, &device).err().unwrap(), CheckpointError::NonFinite { .. }));
    }
}
