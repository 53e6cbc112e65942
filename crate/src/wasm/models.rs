//! Models the page loads: a toy checkpoint, an image U-Net, and what a checkpoint's header says.

use super::{js_err, to_js, Engine};
use crate::checkpoint::{self, Expected};
use crate::image::store::{self, Loaded};
use crate::image::unet::{ImageModel, UNet};
use crate::model::Model;
use crate::sample::Field;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
impl Engine {
    /// Loads a checkpoint's bytes onto this engine's device. `expect` (optional) is what the file
    /// must be: `{model, blind, dim, width, depth}`, each field optional.
    pub fn load_checkpoint(&self, bytes: &[u8], expect: JsValue) -> Result<LoadedModel, JsError> {
        let expect: Expected = if expect.is_undefined() || expect.is_null() {
            Expected::any()
        } else {
            serde_wasm_bindgen::from_value(expect).map_err(|e| js_err(format!("expected checkpoint: {e}")))?
        };
        let (model, _) = checkpoint::load(bytes, &self.device, &expect).map_err(js_err)?;
        Ok(LoadedModel::trained(model))
    }

    /// Loads an image model (a `geonoise-unet` file, as `geonoise images train` writes) onto this
    /// engine's device. Its `config()` is the `UNetConfig` with `image: true` and `dim`.
    pub fn load_image_checkpoint(&self, bytes: &[u8]) -> Result<LoadedModel, JsError> {
        let Loaded { net, config, .. } = store::load::<UNet>(bytes, &self.device).map_err(js_err)?;
        Ok(LoadedModel::image(ImageModel { config: config.resolved(), net }))
    }
}

/// A field to sample on the engine's device: a trained network, or the closed-form oracle.
#[wasm_bindgen]
pub struct LoadedModel {
    pub(crate) field: Rc<dyn Field>,
    /// What `config()` says: the `ModelConfig`, or for an oracle its own description.
    pub(crate) config: serde_json::Value,
    pub(crate) dim: usize,
    pub(crate) projection_seed: u64,
    /// The image side for an image model (whose samples are images, not toy points).
    pub(crate) side: Option<usize>,
}

impl LoadedModel {
    /// An image model: its `config()` is the `UNetConfig` with `image: true` and `dim`.
    pub(crate) fn image(model: ImageModel) -> LoadedModel {
        let mut described = serde_json::to_value(&model.config).unwrap_or_default();
        described["image"] = true.into();
        described["dim"] = model.config.dim().into();
        LoadedModel { dim: model.config.dim(), side: Some(model.config.side), field: Rc::new(model), config: described, projection_seed: 0 }
    }

    pub(crate) fn trained(model: Model) -> LoadedModel {
        let c = &model.config;
        let (config, dim, projection_seed) = (serde_json::to_value(c).unwrap_or_default(), c.dim, c.projection_seed);
        LoadedModel { field: Rc::new(model), config, dim, projection_seed, side: None }
    }
}

#[wasm_bindgen]
impl LoadedModel {
    /// The `ModelConfig` as a plain object; for an oracle `{model, blind, dim, projection_seed,
    /// oracle: {points, grid}}`.
    pub fn config(&self) -> Result<JsValue, JsError> {
        to_js(&self.config)
    }
    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.dim
    }
    #[wasm_bindgen(getter)]
    pub fn projection_seed(&self) -> f64 {
        self.projection_seed as f64
    }
    /// The image side of an image model; undefined for a toy model.
    #[wasm_bindgen(getter)]
    pub fn side(&self) -> Option<usize> {
        self.side
    }
}

/// What a checkpoint's header says, without loading it: `{config, training}`.
#[wasm_bindgen]
pub fn inspect_checkpoint(bytes: &[u8]) -> Result<JsValue, JsError> {
    let h = checkpoint::inspect(bytes).map_err(js_err)?;
    to_js(&serde_json::json!({"config": h.config, "training": h.training}))
}
