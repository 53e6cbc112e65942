//! The browser's view of the core: the only module that knows about JavaScript.
//!
//! The page's worker (`www/worker.js`) drives it:
//!
//! ```text
//! const engine = await Engine.create("webgpu" | "cpu");   // one per worker: wgpu initialises once
//! const model  = engine.load_checkpoint(bytes, {model: "fm", blind: true, dim: 8});  // a .safetensors file; what it must be (optional)
//! const run    = engine.sampler(model, {n, steps, solver, seed});
//! const frame  = run.advance(4);                          // issue 4 steps; nothing read back yet
//! const {step, t, done, xy} = await frame.read_xy();      // xy: Float32Array [n * 2]
//! const full   = await run.current().read_full();          // Float32Array [n * D], for export
//! const m      = metrics(full, model.dim, model.projection_seed);
//!
//! const tr     = engine.trainer({model: {model: "fm", blind: true, dim: 8, width: 128, depth: 3},
//!                                steps: 2000, batch: 256, lr: 5e-3, seed: 0});
//! tr.step(20);                                            // 20 optimizer steps, nothing read back
//! const loss   = await tr.loss();                         // async read; NaN stops a run
//! const snap   = tr.model();                              // a LoadedModel to sample from
//! const bytes  = await tr.export();                       // checkpoint (Uint8Array), as the CLI writes
//!
//! const unet   = engine.load_image_checkpoint(bytes);     // a U-Net file (pretrained/images/)
//! const run    = engine.sampler(unet, {n: 16, steps: 50, solver: "euler", seed});
//! const pixels = await run.advance(4).read_full();         // Float32Array [n * side * side]
//! const live   = image_metrics(pixels, unet.side);         // {n, diverged, laplacian_energy}
//! const judge  = new ImageScorer(classifierBytes);         // the classifier, on the CPU
//! const final  = judge.score(pixels);                      // {confident_share, class_counts, …}
//! ```
//!
//! Every export returns `Result<_, JsError>`: a bad checkpoint or config is an error the page can
//! show, never a panic. All reads of device memory are async (the only kind WebGPU allows).

use crate::checkpoint::{self, Expected, TrainingInfo};
use crate::dataset::DataSpec;
use crate::image::classifier::Classifier;
use crate::image::metrics as image_metrics;
use crate::image::store::{self, Loaded};
use crate::image::unet::{ImageModel, UNet};
use crate::data::Projection;
use crate::metrics;
use crate::model::Model;
use crate::sample::{Field, Frame, SampleConfig, Sampler};
use crate::train::{TrainConfig, Trainer};
#[cfg(feature = "webgpu")]
use crate::oracle::kernel::OracleKernel;
use crate::oracle::{Oracle, OracleField, DEFAULT_GRID, DEFAULT_POINTS};
use crate::target::Parameterization;
#[cfg(feature = "webgpu")]
use burn::backend::wgpu::WgpuSetup;
use burn::tensor::{Device, Tensor};
use js_sys::Float32Array;
use serde::Serialize;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

// The static constructors of burn's dependencies (cubecl's IR registers its dialects through
// `inventory`), which the linker collects into `__wasm_call_ctors`.
#[cfg(target_family = "wasm")]
extern "C" {
    fn __wasm_call_ctors();
}

/// Runs once, when the module is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    // Calling the constructors here, once, is what stops wasm-ld from calling them at the top of
    // every exported function (its default for a module that never calls them itself). Those
    // repeated calls cost about 1 ms each and came to hundreds per WebGPU training step: every
    // promise and callback into the module is an export call. `node bench/run.mjs webgpu-profile`
    // shows where the host time goes.
    #[cfg(target_family = "wasm")]
    // SAFETY: the linker-made constructor list, run once before any other export is called (the
    // start function runs at instantiation).
    unsafe {
        __wasm_call_ctors()
    };
    console_error_panic_hook::set_once();
    // burn's and cubecl's warnings and errors (a shader the browser's WebGPU rejected, say) reach
    // the console instead of vanishing.
    if log::set_logger(&ConsoleLog).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(s: &str);
}

/// The `log` facade's sink in the browser: console.warn, with the level and the module.
struct ConsoleLog;

impl log::Log for ConsoleLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }

    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            console_warn(&format!("[{} {}] {}", r.level(), r.target(), r.args()));
        }
    }

    fn flush(&self) {}
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsError> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_err)
}

/// The compute device of one worker.
#[wasm_bindgen]
pub struct Engine {
    device: Device,
    backend: String,
    /// The wgpu handles burn's device runs on (WebGPU only): where the hand-written kernels run.
    #[cfg(feature = "webgpu")]
    wgpu: Option<WgpuSetup>,
}

#[wasm_bindgen]
impl Engine {
    /// `backend`: "webgpu" (fails if WebGPU cannot be initialised, or in the CPU-only build) or
    /// "cpu" (burn's Flex).
    pub async fn create(backend: String) -> Result<Engine, JsError> {
        match backend.as_str() {
            "cpu" => Ok(Engine {
                device: Device::flex(),
                backend,
                #[cfg(feature = "webgpu")]
                wgpu: None,
            }),
            #[cfg(feature = "webgpu")]
            "webgpu" => {
                let (device, setup) = Device::wgpu_options().init_with_setup_async().await.map_err(|e| js_err(format!("WebGPU could not be initialised: {e}")))?;
                Ok(Engine { device, backend, wgpu: Some(setup) })
            }
            #[cfg(not(feature = "webgpu"))]
            "webgpu" => Err(js_err("this is the CPU-only build of the core, without WebGPU: load the WebGPU build (www/pkg) for it")),
            other => Err(js_err(format!("unknown backend '{other}': use 'webgpu' or 'cpu'"))),
        }
    }

    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// What the device's allocator holds, `{allocations, bytes_in_use, bytes_reserved}`, or null
    /// where the backend does not report it (the CPU's memory is the wasm memory itself).
    pub fn device_memory(&self) -> Result<JsValue, JsError> {
        match self.device.memory_pool_usage() {
            Some(u) => to_js(&serde_json::json!({"allocations": u.number_allocs, "bytes_in_use": u.bytes_in_use, "bytes_reserved": u.bytes_reserved})),
            None => Ok(JsValue::NULL),
        }
    }

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
        let model = ImageModel { config: config.resolved(), net };
        let mut described = serde_json::to_value(&model.config).unwrap_or_default();
        described["image"] = true.into();
        described["dim"] = model.config.dim().into();
        Ok(LoadedModel { dim: model.config.dim(), side: Some(model.config.side), field: Rc::new(model), config: described, projection_seed: 0 })
    }

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

#[wasm_bindgen]
impl Engine {
    /// Starts a training run; `config` is a `TrainConfig` object (see the module docs).
    pub fn trainer(&self, config: JsValue) -> Result<TrainRun, JsError> {
        let cfg = train_config(config)?;
        let trainer = Trainer::new(cfg, &self.device).map_err(js_err)?;
        Ok(TrainRun { trainer: Rc::new(RefCell::new(trainer)) })
    }

    /// Goes on with a run from a checkpoint's bytes saved at step `step` (after a lost GPU, or a
    /// checkpoint imported from disk).
    pub fn resume_trainer(&self, config: JsValue, bytes: &[u8], step: usize) -> Result<TrainRun, JsError> {
        let cfg = train_config(config)?;
        let (model, _) = checkpoint::load(bytes, &self.device, &Expected::config(&cfg.model)).map_err(js_err)?;
        let trainer = Trainer::resume(cfg, &model, step, &self.device).map_err(js_err)?;
        Ok(TrainRun { trainer: Rc::new(RefCell::new(trainer)) })
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
        let mut tr = self.trainer.borrow_mut();
        for _ in 0..k {
            if tr.finished() {
                break;
            }
            tr.step();
        }
        tr.steps_done()
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
        let trainer = self.trainer.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let Some(t) = trainer.borrow().pending_loss() else { return Ok(JsValue::UNDEFINED) };
            let data = t.into_data_async().await.map_err(|e| JsValue::from(js_err(format!("reading the loss failed: {e:?}"))))?;
            let v = data.convert::<f32>().try_to_vec::<f32>().map_err(|e| JsValue::from(js_err(format!("{e:?}"))))?;
            let loss = v.first().copied().unwrap_or(f32::NAN);
            trainer.borrow_mut().note_loss(loss);
            Ok(JsValue::from(loss))
        })
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

/// A field to sample on the engine's device: a trained network, or the closed-form oracle.
#[wasm_bindgen]
pub struct LoadedModel {
    field: Rc<dyn Field>,
    /// What `config()` says: the `ModelConfig`, or for an oracle its own description.
    config: serde_json::Value,
    dim: usize,
    projection_seed: u64,
    /// The image side for an image model (whose samples are images, not toy points).
    side: Option<usize>,
}

impl LoadedModel {
    fn trained(model: Model) -> LoadedModel {
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
            if self.sampler.step().is_none() {
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

async fn read(t: Tensor<2>) -> Result<Float32Array, JsError> {
    let data = t.into_data_async().await.map_err(|e| js_err(format!("reading from the device failed: {e:?}")))?;
    let v: Vec<f32> = data.convert::<f32>().try_to_vec::<f32>().map_err(|e| js_err(format!("{e:?}")))?;
    Ok(Float32Array::from(v.as_slice()))
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

/// What an oracle is built from (the CLI's `geonoise oracle` flags); missing fields take the
/// defaults.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OracleConfig {
    model: Parameterization,
    /// For `oracle_field`: the blind optimum f*(u), or the conditional f*(u, t).
    #[serde(default)]
    blind: bool,
    dim: usize,
    #[serde(default)]
    projection_seed: u64,
    #[serde(default = "default_points")]
    points: usize,
    #[serde(default = "default_grid")]
    grid: usize,
    /// The 2-D data set (a `DataSpec`); the circles when left out.
    #[serde(default)]
    data: DataSpec,
}

fn default_points() -> usize {
    DEFAULT_POINTS
}

fn default_grid() -> usize {
    DEFAULT_GRID
}

#[wasm_bindgen]
impl Engine {
    /// The closed-form oracle for `config` (`{model, dim, projection_seed?, points?, grid?}`):
    /// its tensor path runs on the CPU (Flex); on WebGPU its WGSL kernel runs on the GPU too.
    pub fn oracle(&self, config: JsValue) -> Result<OracleProbe, JsError> {
        let (_, proj, oracle) = oracle_of(config, &Device::flex())?;
        #[cfg(feature = "webgpu")]
        let kernel = match &self.wgpu {
            Some(setup) => Some(Rc::new(OracleKernel::new(&oracle, &setup.device, &setup.queue).map_err(js_err)?)),
            None => None,
        };
        Ok(OracleProbe {
            oracle,
            #[cfg(feature = "webgpu")]
            kernel,
            proj,
        })
    }

    /// The model's field at the rows of `u` ([M, D] flat) and noise level `t` (a blind model
    /// ignores it): a Promise of a Float32Array [M, D], read back asynchronously.
    pub fn field(&self, model: &LoadedModel, u: Vec<f32>, t: f64) -> Result<js_sys::Promise, JsError> {
        check_rows(&u, model.dim)?;
        let f = model.field.eval(crate::data::host_tensor(u, model.dim, &self.device), t);
        Ok(wasm_bindgen_futures::future_to_promise(async move { read(f).await.map(JsValue::from).map_err(JsValue::from) }))
    }

    /// The closed-form field of `config` (`{model, blind, dim, projection_seed?, points?,
    /// grid?}`) as a model to sample: the oracle samplers, with no training. Its tensor path runs
    /// on this engine's device.
    pub fn oracle_field(&self, config: JsValue) -> Result<LoadedModel, JsError> {
        let (c, _, oracle) = oracle_of(config, &self.device)?;
        let mut config = serde_json::json!({"model": c.model, "blind": c.blind, "dim": c.dim, "projection_seed": c.projection_seed, "oracle": {"points": oracle.points(), "grid": c.grid}});
        if !c.data.is_circles() {
            config["data"] = serde_json::json!(c.data);
        }
        Ok(LoadedModel { field: Rc::new(OracleField { oracle, blind: c.blind }), config, dim: c.dim, projection_seed: c.projection_seed, side: None })
    }
}

/// Flat rows of `dim` values: at least one, and whole.
fn check_rows(u: &[f32], dim: usize) -> Result<(), JsError> {
    if u.is_empty() || u.len() % dim != 0 {
        return Err(js_err(format!("{} values are not rows of D = {dim}", u.len())));
    }
    Ok(())
}

/// `{name: Float32Array}` for each pair.
fn float_arrays<'a>(pairs: impl IntoIterator<Item = (&'a str, Vec<f32>)>) -> Result<JsValue, JsValue> {
    let obj = js_sys::Object::new();
    for (key, v) in pairs {
        js_sys::Reflect::set(&obj, &key.into(), &Float32Array::from(v.as_slice()))?;
    }
    Ok(obj.into())
}

fn oracle_of(config: JsValue, device: &Device) -> Result<(OracleConfig, Projection, Oracle), JsError> {
    let c: OracleConfig = serde_wasm_bindgen::from_value(config).map_err(|e| js_err(format!("oracle config: {e}")))?;
    crate::data::check_dim(c.dim).map_err(js_err)?;
    if !(2..=crate::oracle::MAX_POINTS).contains(&c.points) || !(2..=crate::oracle::MAX_GRID).contains(&c.grid) {
        return Err(js_err(format!("the oracle takes 2 to {} data points and 2 to {} grid levels", crate::oracle::MAX_POINTS, crate::oracle::MAX_GRID)));
    }
    let proj = Projection::new(c.dim, c.projection_seed).map_err(js_err)?;
    let data = c.data.build().map_err(js_err)?;
    let oracle = Oracle::for_data(c.model, c.model.default_range(), &proj, &data, c.points, c.grid, device).map_err(js_err)?;
    Ok((c, proj, oracle))
}

/// An oracle the page can ask about points: `analyze(u)` (tensor path) and `analyze_kernel(u)`
/// (the WGSL kernel), each giving `{posterior, energy, field, grad_energy}` as Float32Arrays.
#[wasm_bindgen]
pub struct OracleProbe {
    oracle: Oracle,
    #[cfg(feature = "webgpu")]
    kernel: Option<Rc<OracleKernel>>,
    proj: Projection,
}

#[wasm_bindgen]
impl OracleProbe {
    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.oracle.dim
    }

    /// The data rows `x_1..x_N` ([N, D] flat).
    pub fn data(&self) -> Float32Array {
        Float32Array::from(crate::sample::read_f32(self.oracle.data().clone()).as_slice())
    }

    /// Whether the WGSL kernel is available (WebGPU engines).
    #[wasm_bindgen(getter)]
    pub fn has_kernel(&self) -> bool {
        #[cfg(feature = "webgpu")]
        return self.kernel.is_some();
        #[cfg(not(feature = "webgpu"))]
        false
    }

    /// The grid of noise levels the posterior is over (increasing).
    pub fn grid(&self) -> js_sys::Float64Array {
        js_sys::Float64Array::from(self.oracle.grid.as_slice())
    }

    /// Points of the data plane (`xy`, rows of 2) lifted into R^D and moved `offset` along a fixed
    /// unit direction orthogonal to the plane (none exists at D = 2): [M, D] flat.
    pub fn plane_points(&self, xy: &[f32], offset: f32) -> Result<Float32Array, JsError> {
        if xy.len() % 2 != 0 {
            return Err(js_err("plane points come in pairs"));
        }
        let dev = Device::flex();
        let d = self.oracle.dim;
        let mut u = crate::sample::read_f32(self.proj.lift(crate::data::host_tensor(xy.to_vec(), 2, &dev)));
        if d > 2 && offset != 0.0 {
            let e = crate::rng::Rng::derive(self.proj.seed, "off-plane").normals_f32(d);
            let back = crate::sample::read_f32(self.proj.lift(self.proj.project(crate::data::host_tensor(e.clone(), d, &dev))));
            let n: Vec<f32> = e.iter().zip(&back).map(|(a, b)| a - b).collect();
            let norm = n.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            for row in u.chunks_exact_mut(d) {
                row.iter_mut().zip(&n).for_each(|(v, nj)| *v += offset * nj / norm);
            }
        }
        Ok(Float32Array::from(u.as_slice()))
    }

    /// Rows of R^D ([M, D] flat) to their data-plane coordinates ([M, 2]).
    pub fn project(&self, v: &[f32]) -> Float32Array {
        Float32Array::from(self.proj.project_host(v).as_slice())
    }

    /// `u = a(t) x_i + b(t) eps` for data point `i` and noise from `seed`: a point whose noise
    /// level is known.
    pub fn noisy_point(&self, t: f64, i: usize, seed: u32) -> Result<Float32Array, JsError> {
        let (lo, hi) = self.oracle.range;
        if !(t >= lo && t <= hi) {
            return Err(js_err(format!("t = {t} is outside the oracle's range [{lo}, {hi}]")));
        }
        let d = self.oracle.dim;
        let data = crate::sample::read_f32(self.oracle.data().clone());
        let i = i % (data.len() / d);
        let eps = crate::rng::Rng::derive(seed as u64, "probe").normals_f32(d);
        let (a, b) = (self.oracle.param.a(t) as f32, self.oracle.param.b(t) as f32);
        let u: Vec<f32> = (0..d).map(|j| a * data[i * d + j] + b * eps[j]).collect();
        Ok(Float32Array::from(u.as_slice()))
    }

    /// The drift perturbation error `|nu(t)| ||f*(u) - f*(u, t)||` (the blind sampler against the
    /// one that knows t), averaged over `m` points drawn from the forward marginal at each level
    /// of `ts`: where the exact conditional flow's trajectories are at that t.
    pub fn drift_curve(&self, ts: &[f64], m: usize, seed: u32) -> Result<js_sys::Float64Array, JsError> {
        let (lo, hi) = self.oracle.range;
        let d = self.oracle.dim;
        let dev = Device::flex();
        let mut rng = crate::rng::Rng::derive(seed as u64, "drift");
        let mut out = Vec::with_capacity(ts.len());
        for &t in ts {
            if !(t >= lo && t <= hi) {
                return Err(js_err(format!("t = {t} is outside the oracle's range [{lo}, {hi}]")));
            }
            let u = self.oracle.marginal_draws(t, m.max(1), &mut rng);
            let err = crate::sample::read_f32(self.oracle.drift_error(crate::data::host_tensor(u, d, &dev), t));
            out.push(err.iter().map(|v| *v as f64).sum::<f64>() / err.len() as f64);
        }
        Ok(js_sys::Float64Array::from(out.as_slice()))
    }

    /// The concentration of the marginals (App. C, `Oracle::concentration`) at the levels `ts`:
    /// `{levels, norms: Float32Array [levels * n] of ||u|| / sqrt(D), t_mean, t_std}`, the last two
    /// the posterior's mean and spread averaged over `probes` draws of each level.
    pub fn concentration(&self, ts: &[f64], n: usize, probes: usize, seed: u32) -> Result<JsValue, JsError> {
        if n == 0 || n > 100_000 || probes > 1000 {
            return Err(js_err("the concentration view takes 1 to 100000 draws and up to 1000 probes per level"));
        }
        let c = self.oracle.concentration(ts, n, probes, seed as u64).map_err(js_err)?;
        let o = js_sys::Object::new();
        let set = |k: &str, v: JsValue| js_sys::Reflect::set(&o, &k.into(), &v).map(|_| ()).map_err(|_| js_err("could not build the result"));
        set("levels", js_sys::Float64Array::from(c.levels.as_slice()).into())?;
        set("norms", Float32Array::from(c.norms.as_slice()).into())?;
        set("t_mean", js_sys::Float64Array::from(c.t_mean.as_slice()).into())?;
        set("t_std", js_sys::Float64Array::from(c.t_std.as_slice()).into())?;
        Ok(o.into())
    }

    /// The noise level read off the geometry (App. C): `b` from `||u_perp||`, then `t`. NaN at
    /// D = 2, where there is no off-plane part.
    pub fn geometric_t(&self, u: &[f32]) -> js_sys::Float64Array {
        let t = crate::data::host_tensor(u.to_vec(), self.oracle.dim, &Device::flex());
        let b = crate::sample::read_f32(crate::oracle::geometric_noise_scale(t, &self.proj));
        let ts: Vec<f64> = b.iter().map(|&b| crate::oracle::t_from_noise_scale(self.oracle.param, self.oracle.range, b as f64)).collect();
        js_sys::Float64Array::from(ts.as_slice())
    }

    /// The tensor path at the rows of `u` ([M, D] flat): posterior, energy, field, grad_energy,
    /// gain (lambdabar), t_mean and t_std.
    pub fn analyze(&self, u: &[f32]) -> Result<JsValue, JsError> {
        let d = self.oracle.dim;
        check_rows(u, d)?;
        let a = self.oracle.analyze(crate::data::host_tensor(u.to_vec(), d, &Device::flex()));
        let read = crate::sample::read_f32;
        float_arrays([
            ("posterior", read(a.posterior)),
            ("energy", read(a.energy)),
            ("field", read(a.field)),
            ("grad_energy", read(a.grad_energy)),
            ("gain", read(a.gain)),
            ("t_mean", read(a.t_mean)),
            ("t_std", read(a.t_std)),
        ])
        .map_err(|_| js_err("could not build the result"))
    }

    /// The WGSL kernel at the rows of `u`: a Promise of the same object as `analyze`.
    pub fn analyze_kernel(&self, u: Vec<f32>) -> Result<js_sys::Promise, JsError> {
        #[cfg(feature = "webgpu")]
        {
            let kernel = self.kernel.clone().ok_or_else(|| js_err("the oracle kernel needs the WebGPU backend"))?;
            Ok(wasm_bindgen_futures::future_to_promise(async move {
                let a = kernel.analyze(&u).await.map_err(|e| JsValue::from(js_err(e)))?;
                float_arrays([("posterior", a.posterior), ("energy", a.energy), ("gain", a.gain), ("field", a.field), ("grad_energy", a.grad_energy)])
            }))
        }
        #[cfg(not(feature = "webgpu"))]
        {
            let _ = u;
            Err(js_err("the oracle kernel needs the WebGPU backend"))
        }
    }
}

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
fn data_set(data: JsValue) -> Result<crate::dataset::DataSet, JsError> {
    let spec: DataSpec = serde_wasm_bindgen::from_value(data).map_err(|e| js_err(format!("data set: {e}")))?;
    spec.build().map_err(js_err)
}

/// A data set's evenly spread points in the plane (rows of 2, normalised as the core uses them):
/// what the page draws under the samples. `data` is a `DataSpec`; `n` the count for a shape.
#[wasm_bindgen]
pub fn data_points(data: JsValue, n: usize) -> Result<Float32Array, JsError> {
    Ok(Float32Array::from(data_set(data)?.discrete(n.clamp(2, 4096)).as_slice()))
}

/// What a checkpoint's header says, without loading it: `{config, training}`.
#[wasm_bindgen]
pub fn inspect_checkpoint(bytes: &[u8]) -> Result<JsValue, JsError> {
    let h = checkpoint::inspect(bytes).map_err(js_err)?;
    to_js(&serde_json::json!({"config": h.config, "training": h.training}))
}
