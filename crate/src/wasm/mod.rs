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
//!
//! const data   = new TrainingImages(idxBytes, "fashion-mnist-train-10k.idx.gz");  // parsed once
//! const itr    = engine.image_trainer({net: {model: "fm", blind: true, channels: 8, …},
//!                                      data: "fashion-mnist", steps, batch, lr, ema, seed}, data);
//! itr.step(5); await itr.loss();                          // as the toy's runs
//! const ema    = itr.model();                             // the moving average, to sample
//! const file   = await itr.export(loss, seconds);         // what `geonoise images train` writes
//! ```
//!
//! Every export returns `Result<_, JsError>`: a bad checkpoint or config is an error the page can
//! show, never a panic. All reads of device memory are async (the only kind WebGPU allows).
//!
//! One file a thing the page asks for: the engine and what every file shares (here), loading
//! models (`models`), sampling runs (`sampling`), training runs (`training`, and for the U-Nets
//! `image_training`), the closed-form
//! oracle and its probes (`oracle`), the image scorer and metrics (`images`), and data sets and
//! the toy's metrics (`data`).

mod data;
mod image_training;
mod images;
mod models;
mod oracle;
mod sampling;
mod training;

pub use data::{data_points, metrics};
pub use image_training::{ImageTrainRun, TrainingImages};
pub use images::{image_metrics, ImageScorer};
pub use models::{inspect_checkpoint, LoadedModel};
pub use oracle::OracleProbe;
pub use sampling::{Run, StepFrame};
pub use training::TrainRun;

#[cfg(feature = "webgpu")]
use burn::backend::wgpu::WgpuSetup;
use burn::tensor::{Device, Tensor};
use js_sys::Float32Array;
use serde::Serialize;
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

pub(crate) fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

pub(crate) fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsError> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_err)
}

pub(crate) async fn read(t: Tensor<2>) -> Result<Float32Array, JsError> {
    let data = t.into_data_async().await.map_err(|e| js_err(format!("reading from the device failed: {e:?}")))?;
    let v: Vec<f32> = data.convert::<f32>().try_to_vec::<f32>().map_err(|e| js_err(format!("{e:?}")))?;
    Ok(Float32Array::from(v.as_slice()))
}

/// The compute device of one worker.
#[wasm_bindgen]
pub struct Engine {
    pub(crate) device: Device,
    backend: String,
    /// The wgpu handles burn's device runs on (WebGPU only): where the hand-written kernels run.
    #[cfg(feature = "webgpu")]
    pub(crate) wgpu: Option<WgpuSetup>,
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
}
