//! The trainers' optimizer: burn's Adam (or AdamW) step for each parameter, with per-parameter
//! gradient-norm clipping, driven over the module here so that its state is keyed by parameter
//! *names* (the weights' names, `blocks.0.fc1.weight`) instead of burn's parameter ids, which a
//! reloaded model does not keep. The arithmetic is burn's own, call for call as burn's
//! `ModuleOptimizer` makes it (a test checks the weights agree to the bit), and the state can be
//! read out (`state`) and put back on any device (`restore`): what a run needs to resume exactly.

use burn::grad_clipping::{GradientClipping, GradientClippingConfig};
use crate::params::{param_shapes, Reads};
use burn::module::{Module, ModuleMapper, Param};
use burn::optim::{AdamConfig, AdamState, AdamWConfig, AdamWState, AdaptiveMomentumState, DynOptimizer, DynState, GradientsParams, StateSource};
use burn::tensor::{Device, Tensor, TensorData};
use std::collections::BTreeMap;
use std::sync::Arc;

/// An optimizer's state by parameter name: tensors and scalars named `NAME/FIELD`, `FIELD` as the
/// optimizer names its parts (`momentum.moment_1`, `momentum.moment_2`, `momentum.time`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimState {
    pub tensors: BTreeMap<String, TensorData>,
    pub scalars: BTreeMap<String, burn_pack::Scalar>,
}

/// Adam or AdamW with clipping, its state keyed by parameter name.
#[derive(Clone)]
pub struct NamedOptimizer {
    optim: Arc<dyn DynOptimizer>,
    /// AdamW (whose per-parameter state is `AdamWState`) rather than Adam (`AdamState`).
    adamw: bool,
    clip: Option<GradientClipping>,
    /// The numbers the fused step (a cubecl device's) takes: epsilon, AdamW's weight decay (0
    /// for Adam) and the clip norm (0 = none). Unread in the CPU-only build.
    #[cfg_attr(not(feature = "webgpu"), allow(dead_code))]
    epsilon: f32,
    #[cfg_attr(not(feature = "webgpu"), allow(dead_code))]
    weight_decay: f32,
    #[cfg_attr(not(feature = "webgpu"), allow(dead_code))]
    clip_norm: f32,
    states: BTreeMap<String, DynState>,
}

/// What each parameter's state is flattened under before its name is put in front.
const PREFIX: &str = "p";

impl NamedOptimizer {
    /// Adam with `epsilon` and, where `weight_decay` is given, AdamW; each parameter's gradient
    /// clipped to norm `clip` (0 = no clipping).
    pub fn adam(epsilon: f32, weight_decay: Option<f32>, clip: f64) -> NamedOptimizer {
        let optim: Arc<dyn DynOptimizer> = match weight_decay {
            None => Arc::new(AdamConfig::new().with_epsilon(epsilon).build()),
            Some(wd) => Arc::new(AdamWConfig::new().with_epsilon(epsilon).with_weight_decay(wd).build()),
        };
        let clip_norm = if clip > 0.0 { clip as f32 } else { 0.0 };
        let clip = (clip > 0.0).then(|| GradientClippingConfig::Norm(clip as f32).init());
        NamedOptimizer { optim, adamw: weight_decay.is_some(), clip, epsilon, weight_decay: weight_decay.unwrap_or(0.0), clip_norm, states: BTreeMap::new() }
    }

    /// One step on every parameter of `module` that has a gradient in `grads`.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        module.map(&mut Stepper { path: vec![], opt: self, grads, lr })
    }

    /// The state, read back to the host (synchronously).
    pub fn state(&self) -> OptimState {
        let (reads, scalars) = self.pending();
        OptimState { tensors: reads.read(), scalars }
    }

    /// The state's tensors still on the device (to be read back by the caller), and its scalars.
    pub fn pending(&self) -> (Reads, BTreeMap<String, burn_pack::Scalar>) {
        let mut reads = Reads::default();
        let mut scalars = BTreeMap::new();
        for (name, st) in &self.states {
            let (time, moments) = self.momentum(st);
            scalars.insert(format!("{name}/momentum.time"), burn_pack::Scalar::from(time));
            for (field, (t, shape)) in ["moment_1", "moment_2"].into_iter().zip(moments) {
                reads.0.push((format!("{name}/momentum.{field}"), t, shape));
            }
        }
        (reads, scalars)
    }

    /// A parameter's Adam step count and its two moments, flattened, with their shape.
    fn momentum(&self, st: &DynState) -> (usize, [(Tensor<1>, Vec<usize>); 2]) {
        fn flat<const D: usize>(m: &AdaptiveMomentumState<D>) -> (usize, [(Tensor<1>, Vec<usize>); 2]) {
            let f = |t: &Tensor<D>| (t.clone().inner().reshape([t.shape().num_elements()]), t.dims().to_vec());
            (m.time, [f(&m.moment_1), f(&m.moment_2)])
        }
        macro_rules! by_rank {
            ($($d:literal)*) => {
                match st.rank() {
                    $($d => if self.adamw { flat(&st.downcast_ref::<AdamWState<$d>>().momentum) } else { flat(&st.downcast_ref::<AdamState<$d>>().momentum) },)*
                    r => panic!("no parameter of rank {r} is trained here"),
                }
            };
        }
        by_rank!(1 2 3 4)
    }

    /// A parameter's state as burn's Adam (or AdamW) keeps it, from its step count and moments.
    #[cfg(feature = "webgpu")]
    fn adam_state<const D: usize>(&self, time: usize, moment_1: Tensor<D>, moment_2: Tensor<D>) -> DynState {
        let momentum = AdaptiveMomentumState { time, moment_1, moment_2, max_moment_2: None };
        if self.adamw {
            DynState::create(AdamWState { momentum }, D)
        } else {
            DynState::create(AdamState { momentum }, D)
        }
    }

    /// Sets a parameter's state from its step count and moments (the fused training step keeps
    /// them in flat buffers and hands them back here to be saved).
    #[cfg(feature = "webgpu")]
    pub fn put_moments<const D: usize>(&mut self, name: &str, time: usize, moment_1: Tensor<D>, moment_2: Tensor<D>) {
        let st = self.adam_state(time, moment_1, moment_2);
        self.states.insert(name.to_string(), st);
    }

    /// The fused kernels' numbers for Adam's step `time` (1-based) at learning rate `lr`: this
    /// optimizer's epsilon, weight decay and clip.
    #[cfg(feature = "webgpu")]
    pub fn fused_step(&self, time: usize, lr: f64) -> crate::fused::adam::AdamStep {
        crate::fused::adam::AdamStep::new(time, lr, self.epsilon, self.weight_decay, self.clip_norm)
    }

    /// The step count and moments out of a parameter's state.
    #[cfg(feature = "webgpu")]
    fn take_moments<const D: usize>(&self, st: DynState) -> (usize, Tensor<D>, Tensor<D>) {
        let m = if self.adamw { st.downcast::<AdamWState<D>>().momentum } else { st.downcast::<AdamState<D>>().momentum };
        (m.time, m.moment_1, m.moment_2)
    }

    /// Puts `state` back for the parameters of `net`, on `device`: every entry must belong to a
    /// parameter of `net` and have its shape, and every parameter named must rebuild. `what` names
    /// the state's source in errors.
    pub fn restore<M: Module>(&mut self, state: &OptimState, net: &M, device: &Device, what: &str) -> Result<(), String> {
        let params: BTreeMap<String, Vec<usize>> = param_shapes(net).into_iter().collect();
        let mut by_param: BTreeMap<String, (Vec<(String, TensorData)>, BTreeMap<String, burn_pack::Scalar>)> = BTreeMap::new();
        let split = |key: &str| -> Result<(String, String), String> {
            let (name, field) = key.rsplit_once('/').ok_or_else(|| format!("{what}: '{key}' is not NAME/FIELD"))?;
            if !params.contains_key(name) {
                return Err(format!("{what} holds optimizer state for {name}, which the model does not have"));
            }
            Ok((name.to_string(), format!("{PREFIX}.{field}")))
        };
        for (key, data) in &state.tensors {
            let (name, field) = split(key)?;
            if data.shape().to_vec() != params[&name] {
                return Err(format!("{what}: the optimizer's {key} is {:?}, the parameter is {:?}", data.shape().to_vec(), params[&name]));
            }
            by_param.entry(name).or_default().0.push((field, data.clone()));
        }
        for (key, v) in &state.scalars {
            let (name, field) = split(key)?;
            by_param.entry(name).or_default().1.insert(field, *v);
        }
        // A run past its first step has moments for every parameter: one missing would restart
        // silently, and the run would not be the same run.
        if !by_param.is_empty() {
            if let Some(missing) = params.keys().find(|n| !by_param.contains_key(*n)) {
                return Err(format!("{what} has no optimizer state for the parameter {missing}"));
            }
        }
        let mut states = BTreeMap::new();
        for (name, (tensors, scalars)) in by_param {
            let mut src = StateSource::new(scalars);
            for (field, data) in tensors {
                src.insert_tensor(field, data);
            }
            let rank = params[&name].len();
            let st = self.optim.state_unflatten(rank, PREFIX, &mut src, device).ok_or_else(|| format!("{what}: the optimizer's state of {name} is incomplete"))?;
            states.insert(name, st);
        }
        self.states = states;
        Ok(())
    }
}

/// Applies the optimizer to each parameter as burn's module optimizer does: clip the gradient,
/// step on the inner (non-autodiff) tensor, lift the result back with the parameter's autodiff
/// settings.
struct Stepper<'a> {
    path: Vec<String>,
    opt: &'a mut NamedOptimizer,
    grads: GradientsParams,
    lr: f64,
}

impl ModuleMapper for Stepper<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let name = self.path.join(".");
        let device = grad.device();
        let (require_grad, checkpointing) = (tensor.is_require_grad(), tensor.gradient_checkpointing_strategy());
        let tensor = if tensor.device() != device { tensor.to_device(&device) } else { tensor };
        // On a cubecl device (wgpu, WebGPU) the clip and the step are one fused kernel.
        #[cfg(feature = "webgpu")]
        if crate::fused::runs_on(&device) {
            let o = &mut *self.opt;
            let (time, moments) = match o.states.remove(&name) {
                Some(st) => {
                    let (time, m1, m2) = o.take_moments::<D>(st);
                    (time, Some((m1.to_device(&device), m2.to_device(&device))))
                }
                None => (0, None),
            };
            let (updated, m1, m2) = crate::fused::adam::step(tensor.inner(), grad, moments, o.fused_step(time + 1, self.lr));
            o.states.insert(name, o.adam_state(time + 1, m1, m2));
            return Param::from_mapped_value(id, lift(updated, require_grad, checkpointing), mapper);
        }
        let grad = match &self.opt.clip {
            Some(c) => c.clip_gradient(grad),
            None => grad,
        };
        let state = self.opt.states.remove(&name).map(|s| self.opt.optim.to_device_dyn(s, &device));
        let (updated, state) = self.opt.optim.step_dyn(D, self.lr, tensor.inner().into_bridge(), grad.into_bridge(), state);
        if let Some(state) = state {
            self.opt.states.insert(name, state);
        }
        Param::from_mapped_value(id, lift(Tensor::<D>::from_bridge(updated), require_grad, checkpointing), mapper)
    }
}

/// An updated inner tensor back as a parameter, with the parameter's autodiff settings.
fn lift<const D: usize>(updated: Tensor<D>, require_grad: bool, checkpointing: Option<burn::tensor::GradientCheckpointingStrategy>) -> Tensor<D> {
    let mut updated = Tensor::from_inner(updated);
    if let Some(strategy) = checkpointing {
        updated = updated.with_gradient_checkpointing_strategy(strategy);
    }
    if require_grad {
        updated = updated.require_grad();
    }
    updated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{time_embedding, ModelConfig, Net};
    use crate::params::{weights, with_weights};
    use crate::rng::Rng;
    use crate::target::Parameterization;
    use burn::optim::ModuleOptimizer;

    fn setup() -> (ModelConfig, Device, Net) {
        let cfg = ModelConfig { width: 16, depth: 2, ..ModelConfig::new(Parameterization::Fm, false, 4) };
        let device = Device::flex().autodiff();
        let net = Net::init(&cfg, 3, &device);
        (cfg, device, net)
    }

    /// A step's gradients on a fixed batch: the same for both optimizers.
    fn grads(cfg: &ModelConfig, net: &Net, k: u64, device: &Device) -> GradientsParams {
        let mut rng = Rng::new(k);
        let u = Tensor::<2>::from_data(TensorData::new(rng.normals_f32(32 * 4), [32, 4]), device);
        let y = Tensor::<2>::from_data(TensorData::new(rng.normals_f32(32 * 4), [32, 4]), device);
        let ts: Vec<f64> = (0..32).map(|_| rng.uniform()).collect();
        let loss = (net.forward(u, time_embedding(cfg, &ts, device)) - y).square().mean();
        GradientsParams::from_grads(loss.backward(), net)
    }

    #[test]
    fn adam_and_adamw_by_name_give_burns_module_optimizer_weights_to_the_bit() {
        for weight_decay in [None, Some(0.01f32)] {
            let (cfg, device, start) = setup();
            let mut ours = NamedOptimizer::adam(1e-8, weight_decay, 0.5);
            let mut theirs: ModuleOptimizer = match weight_decay {
                None => AdamConfig::new().with_epsilon(1e-8).with_grad_clipping(Some(GradientClippingConfig::Norm(0.5))).init(),
                Some(wd) => AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(wd).with_grad_clipping(Some(GradientClippingConfig::Norm(0.5))).init(),
            };
            let (mut a, mut b) = (start.clone(), start);
            for k in 0..12 {
                let lr = 1e-2 / (1.0 + k as f64);
                let ga = grads(&cfg, &a, k, &device);
                a = ours.step(lr, a, ga);
                let gb = grads(&cfg, &b, k, &device);
                b = theirs.step(lr, b, gb);
            }
            let (wa, wb) = (weights(&a), weights(&b));
            assert_eq!(wa.len(), 2 + 6 * 2 + 4);
            for (name, v) in &wa {
                assert_eq!(v.as_bytes(), wb[name].as_bytes(), "{name} (weight decay {weight_decay:?})");
            }
            assert_ne!(weights(&Net::init(&cfg, 3, &device))["input.weight"].as_bytes(), wa["input.weight"].as_bytes(), "the weights moved");
        }
    }

    #[test]
    fn the_state_goes_out_by_name_and_comes_back_on_another_net_exactly() {
        let (cfg, device, net) = setup();
        let mut opt = NamedOptimizer::adam(1e-8, None, 1.0);
        let mut a = net;
        for k in 0..3 {
            let g = grads(&cfg, &a, k, &device);
            a = opt.step(1e-2, a, g);
        }
        let state = opt.state();
        assert!(state.tensors.contains_key("blocks.1.fc2.weight/momentum.moment_1"), "{:?}", state.tensors.keys().collect::<Vec<_>>());
        assert!(state.scalars.contains_key("input.bias/momentum.time"));
        // Another net with the same weights (new parameter ids) and the state put back: the
        // next steps agree with the first optimizer's.
        let b = with_weights(Net::init(&cfg, 9, &device), &weights(&a), "test").unwrap();
        let mut back = NamedOptimizer::adam(1e-8, None, 1.0);
        back.restore(&state, &b, &device.clone().inner(), "test").unwrap();
        assert_eq!(back.state(), state);
        let (mut a, mut b) = (a, b);
        for k in 3..6 {
            let g = grads(&cfg, &a, k, &device);
            a = opt.step(1e-2, a, g);
            let g = grads(&cfg, &b, k, &device);
            b = back.step(1e-2, b, g);
        }
        assert_eq!(weights(&a)["output.weight"].as_bytes(), weights(&b)["output.weight"].as_bytes());
        // A state of another shape, or for a parameter the model lacks, is refused by name.
        let mut wrong = state.clone();
        wrong.tensors.insert("blocks.9.fc1.weight/momentum.moment_1".into(), TensorData::new(vec![0f32; 4], [2, 2]));
        assert!(back.restore(&wrong, &b, &device, "the file").unwrap_err().contains("blocks.9.fc1.weight, which the model does not have"));
        let mut wrong = state.clone();
        wrong.tensors.insert("input.bias/momentum.moment_1".into(), TensorData::new(vec![0f32; 3], [3]));
        assert!(back.restore(&wrong, &b, &device, "the file").unwrap_err().contains("input.bias/momentum.moment_1 is [3]"));
    }
}
