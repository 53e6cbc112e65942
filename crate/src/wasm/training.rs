//! Training runs: the core's step-at-a-time trainer, pumped by the page in chunks, with its loss
//! read asynchronously and its weights exported as the CLI's checkpoint.

use super::{js_err, to_js, Engine, LoadedModel};
use crate::checkpoint::{self, Expected, TrainingInfo};
use crate::train::{TrainConfig, Trainer};
use burn::tensor::Device;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
impl Engine {
    /// Starts a training run; `config` is a `TrainConfig` object (see the module docs).
    pub fn trainer(&self, config: JsValue) -> Result<TrainRun, JsError> {
        let cfg = train_config(config)?;
        let trainer = Trainer::new(cfg, &self.device).map_err(js_err)?;
        Ok(self.run(trainer))
    }

    /// Goes on with the run a state file (`TrainRun.state`) holds, exactly where it stopped (the
    /// same weights as a run that never stopped); `config` must be that run's.
    pub fn resume_trainer_state(&self, config: JsValue, state: &[u8]) -> Result<TrainRun, JsError> {
        let cfg = train_config(config)?;
        let (trainer, _) = Trainer::resume_state(cfg, state, &self.device).map_err(|e| js_err(format!("the saved state: {e}")))?;
        Ok(self.run(trainer))
    }

    fn run(&self, trainer: Trainer) -> TrainRun {
        TrainRun { trainer: Rc::new(RefCell::new(trainer)) }
    }

    /// Goes on with a run from a checkpoint's bytes saved at step `step` (after a lost GPU, or a
    /// checkpoint imported from disk).
    pub fn resume_trainer(&self, config: JsValue, bytes: &[u8], step: usize) -> Result<TrainRun, JsError> {
        let cfg = train_config(config)?;
        let (model, _) = checkpoint::load(bytes, &self.device, &Expected::config(&cfg.model)).map_err(js_err)?;
        let trainer = Trainer::resume(cfg, &model, step, &self.device).map_err(js_err)?;
        Ok(self.run(trainer))
    }
}

/// What one page may ask of the browser for a training run (wasm32 memory tops out at 4 GiB, and
/// many machines give a tab less).
const TRAIN_MEMORY_BUDGET: u64 = 2 << 30;

/// A training config from the page, refused before any allocation when its run would not fit.
fn train_config(config: JsValue) -> Result<TrainConfig, JsError> {
    let cfg: TrainConfig = serde_wasm_bindgen::from_value(config).map_err(|e| js_err(format!("training config: {e}")))?;
    cfg.validate().map_err(js_err)?;
    let need = cfg.memory_estimate();
    if need > TRAIN_MEMORY_BUDGET {
        return Err(js_err(format!(
            "training this model (D = {}, width {}, depth {}, batch {}) would need about {:.1} GiB of memory, more than the {} GiB a page is given here; lower the batch, width or depth, or train with the geonoise CLI",
            cfg.model.dim,
            cfg.model.width,
            cfg.model.depth,
            cfg.batch,
            need as f64 / (1u64 << 30) as f64,
            TRAIN_MEMORY_BUDGET >> 30
        )));
    }
    Ok(cfg)
}

/// A training run in progress. Shared with the promises it hands out, so a read in flight never
/// holds a borrow across an `await`.
#[wasm_bindgen]
pub struct TrainRun {
    trainer: Rc<RefCell<Trainer>>,
}

#[wasm_bindgen]
impl TrainRun {
    /// Issues up to `k` optimizer steps (never past the configured total); returns the steps done.
    pub fn step(&mut self, k: u32) -> usize {
        steps(&self.trainer, k)
    }

    /// Whether the fused WebGPU step is recorded once and replayed (on by default); off, every
    /// step goes through the launch path (the benches' side-by-side comparison).
    pub fn set_replay(&mut self, on: bool) {
        self.trainer.borrow_mut().set_replay(on);
    }

    /// Whether the last step replayed the recorded fused step.
    #[wasm_bindgen(getter)]
    pub fn replaying(&self) -> bool {
        self.trainer.borrow().is_replaying()
    }

    #[wasm_bindgen(getter)]
    pub fn steps_done(&self) -> usize {
        self.trainer.borrow().steps_done()
    }

    #[wasm_bindgen(getter)]
    pub fn finished(&self) -> bool {
        self.trainer.borrow().finished()
    }

    /// The `TrainConfig` as a plain object (time range resolved).
    pub fn config(&self) -> Result<JsValue, JsError> {
        to_js(&self.trainer.borrow().config)
    }

    /// The last step's loss, read asynchronously: resolves to a number (NaN or ±Infinity when the
    /// run blew up; the weights of the last finite read stay available), or `undefined` before
    /// the first step.
    pub fn loss(&self) -> js_sys::Promise {
        loss(self.trainer.clone())
    }

    /// Puts back the weights of the last finite loss read; returns their step, or `undefined`.
    pub fn restore_last_good(&mut self) -> Option<usize> {
        self.trainer.borrow_mut().restore_last_good()
    }

    /// Fault injection (tests): the next step's batch holds a NaN.
    pub fn inject_nan(&mut self) {
        self.trainer.borrow_mut().inject_nan();
    }

    /// The model as trained so far, to sample from (shares the weights; nothing is copied).
    pub fn model(&self) -> LoadedModel {
        LoadedModel::trained(self.trainer.borrow().model())
    }

    /// The run's whole state as a state file (weights, Adam's moments, step, batch stream: what
    /// `Engine.resume_trainer_state` goes on from exactly), read back asynchronously: a Promise of
    /// a Uint8Array, of the step this is called at.
    pub fn state(&self) -> Result<js_sys::Promise, JsError> {
        let pending = self.trainer.borrow().pending_state(serde_json::Value::Null).map_err(js_err)?;
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let bytes = pending.encode_async().await.map_err(|e| JsValue::from(js_err(e)))?;
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        }))
    }

    /// The model as a checkpoint file (f32, with the training config and step in its metadata),
    /// the same format `geonoise train` writes. Every parameter is read back asynchronously
    /// first, so this works on WebGPU.
    pub fn export(&self, final_loss: Option<f32>) -> js_sys::Promise {
        let (model, info) = {
            let tr = self.trainer.borrow();
            (tr.model(), TrainingInfo { train: tr.config.clone(), steps_done: tr.steps_done(), final_loss })
        };
        wasm_bindgen_futures::future_to_promise(async move {
            let host = model.to_device_async(&Device::flex()).await.map_err(|e| JsValue::from(js_err(e)))?;
            let bytes = checkpoint::save(&host, Some(&info)).map_err(|e| JsValue::from(js_err(e)))?;
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        })
    }
}

/// What the page's two kinds of training run share (the toy's `Trainer`, the U-Nets'
/// `ImageTrainer`): stepping, and the loss read back asynchronously.
pub(crate) trait Stepping {
    fn finished(&self) -> bool;
    fn step(&mut self);
    fn steps_done(&self) -> usize;
    fn pending_loss(&self) -> Option<burn::tensor::Tensor<1>>;
    fn note_loss(&mut self, loss: f32) -> f32;
}

macro_rules! stepping {
    ($t:ty) => {
        impl Stepping for $t {
            fn finished(&self) -> bool {
                <$t>::finished(self)
            }
            fn step(&mut self) {
                <$t>::step(self)
            }
            fn steps_done(&self) -> usize {
                <$t>::steps_done(self)
            }
            fn pending_loss(&self) -> Option<burn::tensor::Tensor<1>> {
                <$t>::pending_loss(self)
            }
            fn note_loss(&mut self, loss: f32) -> f32 {
                <$t>::note_loss(self, loss)
            }
        }
    };
}
stepping!(Trainer);
stepping!(crate::image::train::ImageTrainer);

/// Up to `k` optimizer steps of a run (never past its total); the steps done.
pub(crate) fn steps<T: Stepping>(trainer: &RefCell<T>, k: u32) -> usize {
    let mut tr = trainer.borrow_mut();
    for _ in 0..k {
        if tr.finished() {
            break;
        }
        tr.step();
    }
    tr.steps_done()
}

/// The last step's loss, read asynchronously: a Promise of a number (NaN or ±Infinity when the run
/// blew up), or of `undefined` before the first step. A finite value marks the run as good.
pub(crate) fn loss<T: Stepping + 'static>(trainer: Rc<RefCell<T>>) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(async move {
        let Some(t) = trainer.borrow().pending_loss() else { return Ok(JsValue::UNDEFINED) };
        let data = t.into_data_async().await.map_err(|e| JsValue::from(js_err(format!("reading the loss failed: {e:?}"))))?;
        let v = data.convert::<f32>().try_to_vec::<f32>().map_err(|e| JsValue::from(js_err(format!("{e:?}"))))?;
        let loss = v.first().copied().unwrap_or(f32::NAN);
        trainer.borrow_mut().note_loss(loss);
        Ok(JsValue::from(loss))
    })
}
