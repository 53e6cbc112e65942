//! The closed-form oracle on the page: exact fields to sample, and the probes of the Theory tab
//! (posterior, energy, drift error, concentration, geometric noise level), on the tensor path and,
//! on WebGPU, the WGSL kernel.

use super::{js_err, read, Engine, LoadedModel};
use crate::data::Projection;
use crate::dataset::DataSpec;
#[cfg(feature = "webgpu")]
use crate::oracle::kernel::OracleKernel;
use crate::oracle::{Oracle, OracleField, DEFAULT_GRID, DEFAULT_POINTS};
use crate::target::Parameterization;
use burn::tensor::Device;
use js_sys::Float32Array;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

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
