//! Sampling runs: a model's field followed step by step, the positions read back only when the
//! page draws them.

use super::{js_err, read, Engine, LoadedModel};
use crate::data::Projection;
use crate::sample::{Frame, SampleConfig, Sampler};
use js_sys::Float32Array;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
impl Engine {
    /// Starts a sampling run; `config` is a `SampleConfig` object (missing fields take defaults).
    pub fn sampler(&self, model: &LoadedModel, config: JsValue) -> Result<Run, JsError> {
        let cfg: SampleConfig = if config.is_undefined() || config.is_null() {
            SampleConfig::default()
        } else {
            serde_wasm_bindgen::from_value(config).map_err(|e| js_err(format!("sample config: {e}")))?
        };
        let field = model.field.clone();
        let sampler = if model.side.is_some() {
            Sampler::unprojected(field, cfg, &self.device)
        } else {
            Sampler::new(field, cfg, &Projection::new(model.dim, model.projection_seed).map_err(js_err)?, &self.device)
        };
        Ok(Run { sampler: sampler.map_err(js_err)? })
    }
}

/// A sampling run in progress.
#[wasm_bindgen]
pub struct Run {
    sampler: Sampler,
}

#[wasm_bindgen]
impl Run {
    /// Issues up to `k` steps and returns the positions after them (not yet read back).
    pub fn advance(&mut self, k: u32) -> StepFrame {
        for _ in 0..k.max(1) {
            if !self.sampler.advance() {
                break;
            }
        }
        self.current()
    }

    /// The current positions.
    pub fn current(&self) -> StepFrame {
        StepFrame { frame: self.sampler.frame(), done: self.sampler.done(), total: self.sampler.total_steps() }
    }

    /// Before the first step, the frame `{step: 0, t, done, total, xy, full}` (`xy` n * 2 and
    /// `full` n * D values) made on the host with no device work; `null` after it. The page's
    /// first frame comes from here.
    pub fn start_on_host(&self) -> Result<JsValue, JsError> {
        let Some((full, xy)) = self.sampler.start_on_host() else { return Ok(JsValue::NULL) };
        let s = &self.sampler;
        frame_object(0, s.t(), s.done(), s.total_steps(), [("xy", Float32Array::from(xy.as_slice())), ("full", Float32Array::from(full.as_slice()))])
    }

    #[wasm_bindgen(getter)]
    pub fn done(&self) -> bool {
        self.sampler.done()
    }

    #[wasm_bindgen(getter)]
    pub fn steps_done(&self) -> usize {
        self.sampler.steps_done()
    }
}

/// Positions after some step, still on the device.
#[wasm_bindgen]
pub struct StepFrame {
    frame: Frame,
    done: bool,
    total: usize,
}

/// A frame as the page reads it: `{step, t, done, total}` and the given arrays.
fn frame_object<const N: usize>(step: usize, t: f64, done: bool, total: usize, arrays: [(&str, Float32Array); N]) -> Result<JsValue, JsError> {
    let o = js_sys::Object::new();
    let fields = [("step", JsValue::from(step as f64)), ("t", JsValue::from(t)), ("done", JsValue::from(done)), ("total", JsValue::from(total as f64))];
    for (k, v) in fields.into_iter().chain(arrays.into_iter().map(|(k, a)| (k, a.into()))) {
        js_sys::Reflect::set(&o, &k.into(), &v).map_err(|_| js_err("could not build the frame object"))?;
    }
    Ok(o.into())
}

#[wasm_bindgen]
impl StepFrame {
    /// `{step, t, done, total, xy}`, `xy` the plane coordinates as a Float32Array of n * 2.
    pub async fn read_xy(self) -> Result<JsValue, JsError> {
        let xy = read(self.frame.xy.ok_or_else(|| js_err("this run's samples have no plane coordinates"))?).await?;
        frame_object(self.frame.step, self.frame.t, self.done, self.total, [("xy", xy)])
    }

    /// The full positions, n * D values.
    pub async fn read_full(self) -> Result<Float32Array, JsError> {
        read(self.frame.u).await
    }

    /// `{step, t, done, total, full}`, `full` the positions (n * D values): an image run's frame,
    /// which has no plane coordinates.
    pub async fn read_with_full(self) -> Result<JsValue, JsError> {
        let full = read(self.frame.u).await?;
        frame_object(self.frame.step, self.frame.t, self.done, self.total, [("full", full)])
    }
}
