//! Image training runs in the page: the core's U-Net trainer (`image::train`, moving average
//! included) on a slice of the training images, stepped in chunks by the worker as the toy's
//! runs are, its loss read asynchronously, its moving average sampled for previews and exported
//! as the file `geonoise images train` writes.

use super::{js_err, to_js, Engine, LoadedModel};
use crate::image::idx::{self, Images};
use crate::image::train::{ImageTrainConfig, ImageTrainer};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// What one page may hold for an image training run (two runs share a page).
const IMAGE_TRAIN_MEMORY_BUDGET: u64 = 1 << 30;

/// Training images, parsed once and shared by the runs that train on them.
#[wasm_bindgen]
pub struct TrainingImages {
    images: Rc<Images>,
}

#[wasm_bindgen]
impl TrainingImages {
    /// An IDX images file (gzipped or not); `name` is how errors refer to it.
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: Vec<u8>, name: &str) -> Result<TrainingImages, JsError> {
        let images = idx::parse_images(bytes, name).map_err(js_err)?;
        Ok(TrainingImages { images: Rc::new(images) })
    }

    #[wasm_bindgen(getter)]
    pub fn n(&self) -> usize {
        self.images.n
    }

    /// The images' side (they are square), or 0 for images that are not.
    #[wasm_bindgen(getter)]
    pub fn side(&self) -> usize {
        if self.images.rows == self.images.cols {
            self.images.rows
        } else {
            0
        }
    }

    /// Images `first..first + count` on the models' scale ([-1, 1]), rows of `side * side`.
    pub fn rows(&self, first: usize, count: usize) -> Vec<f32> {
        let end = (first + count).min(self.images.n);
        (first.min(end)..end).flat_map(|i| self.images.unit(i).collect::<Vec<_>>()).collect()
    }
}

/// An image training config from the page, refused before any allocation when it is invalid or
/// its run would not fit.
fn image_train_config(config: JsValue) -> Result<ImageTrainConfig, JsError> {
    let cfg: ImageTrainConfig = serde_wasm_bindgen::from_value(config).map_err(|e| js_err(format!("image training config: {e}")))?;
    cfg.validate().map_err(js_err)?;
    let need = cfg.memory_estimate();
    if need > IMAGE_TRAIN_MEMORY_BUDGET {
        return Err(js_err(format!(
            "training this U-Net ({} channels, levels {:?}, batch {}) would need about {:.2} GiB of memory, more than the {:.0} GiB a run is given here; lower the channels or the batch, or train with `geonoise images train`",
            cfg.net.channels,
            cfg.net.mults,
            cfg.batch,
            need as f64 / (1u64 << 30) as f64,
            IMAGE_TRAIN_MEMORY_BUDGET as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(cfg)
}

#[wasm_bindgen]
impl Engine {
    /// Starts an image training run; `config` is an `ImageTrainConfig` object (the CLI's `images
    /// train` flags), `images` the training images.
    pub fn image_trainer(&self, config: JsValue, images: &TrainingImages) -> Result<ImageTrainRun, JsError> {
        let cfg = image_train_config(config)?;
        let trainer = ImageTrainer::new(cfg, &images.images, &self.device).map_err(js_err)?;
        Ok(ImageTrainRun { trainer: Rc::new(RefCell::new(trainer)) })
    }

    /// Goes on with the run a state file (`ImageTrainRun.state`, or the CLI's `--state` file)
    /// holds, exactly where it stopped; `config` must be that run's.
    pub fn resume_image_trainer(&self, config: JsValue, images: &TrainingImages, state: &[u8]) -> Result<ImageTrainRun, JsError> {
        let cfg = image_train_config(config)?;
        let (trainer, _) = ImageTrainer::resume_state(cfg, state, &images.images, &self.device).map_err(|e| js_err(format!("the saved state: {e}")))?;
        Ok(ImageTrainRun { trainer: Rc::new(RefCell::new(trainer)) })
    }
}

/// An image training run in progress. Shared with the promises it hands out, so a read in flight
/// never holds a borrow across an `await`.
#[wasm_bindgen]
pub struct ImageTrainRun {
    trainer: Rc<RefCell<ImageTrainer>>,
}

#[wasm_bindgen]
impl ImageTrainRun {
    /// Issues up to `k` optimizer steps (never past the configured total); returns the steps done.
    pub fn step(&mut self, k: u32) -> usize {
        super::training::steps(&self.trainer, k)
    }

    #[wasm_bindgen(getter)]
    pub fn steps_done(&self) -> usize {
        self.trainer.borrow().steps_done()
    }

    #[wasm_bindgen(getter)]
    pub fn finished(&self) -> bool {
        self.trainer.borrow().finished()
    }

    /// The `ImageTrainConfig` as a plain object (time range resolved).
    pub fn config(&self) -> Result<JsValue, JsError> {
        to_js(&self.trainer.borrow().config)
    }

    /// The last step's loss, read asynchronously: a number (NaN or ±Infinity when the run blew
    /// up; `restore_last_good` then goes back), or `undefined` before the first step.
    pub fn loss(&self) -> js_sys::Promise {
        super::training::loss(self.trainer.clone())
    }

    /// Puts the run back as it was at the last finite loss read; returns that step, or
    /// `undefined` if no loss was ever finite.
    pub fn restore_last_good(&mut self) -> Option<usize> {
        self.trainer.borrow_mut().restore_last_good()
    }

    /// Fault injection (tests): the next step's batch holds a NaN.
    pub fn inject_nan(&mut self) {
        self.trainer.borrow_mut().inject_nan();
    }

    /// The moving average of the weights as a model to sample (what is saved; shares the
    /// weights, nothing is copied).
    pub fn model(&self) -> LoadedModel {
        LoadedModel::image(self.trainer.borrow().ema_model())
    }

    /// The run's whole state as a state file (what `Engine.resume_image_trainer` and the CLI's
    /// `images train --state` go on from exactly), read back asynchronously: a Promise of a
    /// Uint8Array, of the step this is called at.
    pub fn state(&self, seconds: f64) -> Result<js_sys::Promise, JsError> {
        let pending = self.trainer.borrow().pending_state(serde_json::json!({"seconds": seconds})).map_err(js_err)?;
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let bytes = pending.encode_async().await.map_err(|e| JsValue::from(js_err(e)))?;
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        }))
    }

    /// The moving average as a checkpoint (f32, with the training record), the file `geonoise
    /// images train` writes and `geonoise images sample --checkpoint` reads, read back
    /// asynchronously: a Promise of a Uint8Array.
    pub fn export(&self, final_loss: Option<f32>, seconds: f64) -> js_sys::Promise {
        let pending = self.trainer.borrow().pending_checkpoint(final_loss, seconds);
        wasm_bindgen_futures::future_to_promise(async move {
            let bytes = pending.encode_async().await.map_err(|e| JsValue::from(js_err(e)))?;
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        })
    }
}
