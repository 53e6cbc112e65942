//! Data sets and the toy's metrics: the points the page draws under the samples, and the numbers
//! under each panel.

use super::{js_err, to_js};
use crate::data::Projection;
use crate::dataset::{DataSet, DataSpec};
use crate::metrics;
use js_sys::Float32Array;
use wasm_bindgen::prelude::*;

/// Metrics of samples (rows of `dim` values) for the lift with `projection_seed`, against the
/// data set `data` (a `DataSpec`, as a model's config has it; the circles when undefined).
#[wasm_bindgen]
pub fn metrics(samples: &[f32], dim: usize, projection_seed: f64, data: JsValue) -> Result<JsValue, JsError> {
    let proj = Projection::new(dim, projection_seed as u64).map_err(js_err)?;
    let m = if data.is_undefined() || data.is_null() {
        metrics::compute(samples, &proj)
    } else {
        metrics::compute_for(samples, &proj, &data_set(data)?)
    }
    .map_err(js_err)?;
    to_js(&m)
}

/// A `DataSpec` from the page, built (normalised and checked).
fn data_set(data: JsValue) -> Result<DataSet, JsError> {
    let spec: DataSpec = serde_wasm_bindgen::from_value(data).map_err(|e| js_err(format!("data set: {e}")))?;
    spec.build().map_err(js_err)
}

/// A data set's evenly spread points in the plane (rows of 2, normalised as the core uses them):
/// what the page draws under the samples. `data` is a `DataSpec`; `n` the count for a shape.
#[wasm_bindgen]
pub fn data_points(data: JsValue, n: usize) -> Result<Float32Array, JsError> {
    Ok(Float32Array::from(data_set(data)?.discrete(n.clamp(2, 4096)).as_slice()))
}
