//! The Images tab's numbers: the residual noise of a frame, and the classifier's verdict at a
//! run's end.

use super::{js_err, to_js};
use crate::image::classifier::Classifier;
use crate::image::metrics as image_metrics;
use crate::image::store::{self, Loaded};
use burn::tensor::Device;
use wasm_bindgen::prelude::*;

/// The numbers under an image grid at every frame (`image::metrics::frame_metrics`):
/// `{n, diverged, laplacian_energy}` of rows of `side * side` pixels.
#[wasm_bindgen]
pub fn image_metrics(rows: &[f32], side: usize) -> Result<JsValue, JsError> {
    to_js(&image_metrics::frame_metrics(rows, side).map_err(js_err)?)
}

/// The classifier that scores image samples (`pretrained/images/classifier.safetensors`). It
/// runs on the CPU whatever the engine's backend: it reads its result synchronously, and scores
/// a few dozen images once per run.
#[wasm_bindgen]
pub struct ImageScorer {
    net: Classifier,
    side: usize,
    names: [&'static str; 10],
}

#[wasm_bindgen]
impl ImageScorer {
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8]) -> Result<ImageScorer, JsError> {
        let Loaded { net, config, .. } = store::load::<Classifier>(bytes, &Device::flex()).map_err(js_err)?;
        Ok(ImageScorer { net, side: config.side, names: config.data.classes() })
    }

    /// `{n, diverged, confident_share, class_counts, classes: [[class, probability], …], names}`
    /// of rows of the classifier's side; `names` are the data set's class names.
    pub fn score(&self, rows: &[f32]) -> Result<JsValue, JsError> {
        let mut v = serde_json::to_value(image_metrics::verdict(&self.net, self.side, rows, &Device::flex()).map_err(js_err)?).map_err(js_err)?;
        v["names"] = serde_json::json!(self.names);
        to_js(&v)
    }
}
