//! Stop anywhere, resume exactly: a training run's whole state in one file, so that N steps
//! straight and k + (N - k) steps with a stop in between give the same weights.
//!
//! A state file is a safetensors file (`geonoise.format` = `geonoise-train-state`) holding:
//!
//! | tensor | what |
//! |---|---|
//! | `weights/NAME` | the raw weights (f32), `NAME` as in the weights' own files (`blocks.0.fc1.weight`) |
//! | `adam/NAME/FIELD` | the optimizer's state of parameter `NAME` (`momentum.moment_1`, `momentum.moment_2`) |
//! | `ema/NAME` | the moving average of the weights, for a trainer that keeps one |
//!
//! and in its metadata `geonoise.state`, as JSON: `of` (the format of the weights it trains),
//! `config` (the run's config), `step` (optimizer steps done; the learning rate follows from it),
//! `rng` (the batch stream's generator, `s` as four hex words and the Box–Muller spare), `scalars`
//! (the optimizer's per-parameter scalars, `NAME/FIELD`: Adam's step count) and `extra` (what the
//! trainer adds, e.g. the seconds trained). Everything is keyed by parameter *names*, never by
//! burn's parameter ids, which a reload does not keep.
//!
//! Reading a file checks everything before anything is used: the format, the config against the
//! run's, every name against the model's parameters, every shape, and that every value is finite;
//! an error names the file's problem. Writing is the caller's, atomically (`write_atomic`).

use crate::optimizer::{NamedOptimizer, OptimState};
use crate::params::{weight_reads, Reads};
use crate::rng::Rng;
use burn::module::Module;
use burn::tensor::TensorData;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub const FORMAT: &str = "geonoise-train-state";
const VERSION: u32 = 1;
const KEY_FORMAT: &str = "geonoise.format";
const KEY_VERSION: &str = "geonoise.version";
const KEY_STATE: &str = "geonoise.state";

/// A training run's whole state, as a state file holds it.
#[derive(Clone, Debug)]
pub struct RunState {
    /// The format of the weights the run trains (`geonoise-checkpoint`, `geonoise-unet`).
    pub of: String,
    /// The run's config, as JSON (compared with the resuming run's).
    pub config: serde_json::Value,
    pub step: usize,
    pub rng: Rng,
    pub weights: BTreeMap<String, TensorData>,
    pub optimizer: OptimState,
    pub ema: Option<BTreeMap<String, TensorData>>,
    pub extra: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct Header {
    of: String,
    config: serde_json::Value,
    step: usize,
    rng: RngState,
    scalars: BTreeMap<String, burn_pack::Scalar>,
    #[serde(default)]
    extra: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct RngState {
    s: [String; 4],
    spare_normal: Option<f64>,
}

impl RunState {
    /// The state file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let (s, spare_normal) = self.rng.state();
        let header = Header { of: self.of.clone(), config: self.config.clone(), step: self.step, rng: RngState { s: s.map(|w| format!("{w:016x}")), spare_normal }, scalars: self.optimizer.scalars.clone(), extra: self.extra.clone() };
        let mut named: Vec<(String, &TensorData)> = vec![];
        named.extend(self.weights.iter().map(|(k, v)| (format!("weights/{k}"), v)));
        named.extend(self.optimizer.tensors.iter().map(|(k, v)| (format!("adam/{k}"), v)));
        if let Some(ema) = &self.ema {
            named.extend(ema.iter().map(|(k, v)| (format!("ema/{k}"), v)));
        }
        let views = named
            .iter()
            .map(|(k, v)| TensorView::new(Dtype::F32, v.shape().to_vec(), v.as_bytes()).map(|t| (k.clone(), t)).map_err(|e| format!("state tensor {k}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let metadata = HashMap::from([
            (KEY_FORMAT.to_string(), FORMAT.to_string()),
            (KEY_VERSION.to_string(), VERSION.to_string()),
            (KEY_STATE.to_string(), serde_json::to_string(&header).map_err(|e| e.to_string())?),
        ]);
        safetensors::serialize(views, Some(metadata)).map_err(|e| format!("writing the state: {e}"))
    }

    /// Reads a state file of a run training weights of format `of`; every tensor is checked to be
    /// f32 and finite. Names and shapes are checked against the model where the state is used.
    pub fn decode(bytes: &[u8], of: &str) -> Result<RunState, String> {
        if bytes.is_empty() {
            return Err("the state file is empty".into());
        }
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| format!("not a readable state file (a truncated or damaged file?): {e}"))?;
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| format!("not a readable state file: {e}"))?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        match metadata.get(KEY_FORMAT).map(String::as_str) {
            Some(FORMAT) => {}
            Some(other) => return Err(format!("it holds a {other}, not a training state")),
            None => return Err("it is not a geonoise training state".into()),
        }
        let version: u32 = metadata.get(KEY_VERSION).and_then(|v| v.parse().ok()).ok_or("its format version is unreadable")?;
        if version > VERSION {
            return Err(format!("it was written by a newer geonoise (state version {version}; this one reads up to {VERSION})"));
        }
        let header: Header = serde_json::from_str(metadata.get(KEY_STATE).ok_or("it has no run in its metadata")?).map_err(|e| format!("its run is unreadable: {e}"))?;
        if header.of != of {
            return Err(format!("it is the state of a run training a {}, not a {of}", header.of));
        }
        let mut s = [0u64; 4];
        for (w, text) in s.iter_mut().zip(&header.rng.s) {
            *w = u64::from_str_radix(text, 16).map_err(|_| format!("its generator state '{text}' is unreadable"))?;
        }
        let mut out = RunState { of: header.of, config: header.config, step: header.step, rng: Rng::from_state(s, header.rng.spare_normal), weights: BTreeMap::new(), optimizer: OptimState { tensors: BTreeMap::new(), scalars: header.scalars }, ema: None, extra: header.extra };
        for (name, view) in tensors.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(format!("{name} is {:?}, a state holds f32", view.dtype()));
            }
            let data = TensorData::from_bytes_vec(view.data().to_vec(), view.shape().to_vec(), burn::tensor::DType::F32);
            let bad = data.as_slice::<f32>().map_err(|e| format!("{name}: {e:?}"))?.iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                return Err(format!("{name} holds {bad} non-finite values"));
            }
            let (kind, key) = name.split_once('/').ok_or_else(|| format!("it holds a tensor '{name}' of no part of a run"))?;
            match kind {
                "weights" => out.weights.insert(key.to_string(), data),
                "adam" => out.optimizer.tensors.insert(key.to_string(), data),
                "ema" => out.ema.get_or_insert_with(BTreeMap::new).insert(key.to_string(), data),
                _ => return Err(format!("it holds a tensor '{name}' of no part of a run")),
            };
        }
        Ok(out)
    }

    /// The state of `config`'s run (of weights of format `of`, `steps` steps long) that `bytes`
    /// hold: read (`decode`), the config checked (`check_config`), and refused when it is past
    /// the run's last step.
    pub fn read_for<C: Serialize>(bytes: &[u8], of: &str, config: &C, steps: usize) -> Result<RunState, String> {
        let st = RunState::decode(bytes, of)?;
        st.check_config(config)?;
        if st.step > steps {
            return Err(format!("it is at step {}, past the run's {steps} steps", st.step));
        }
        Ok(st)
    }

    /// The state's config as `T`, refused with both named where it is not `want`'s run.
    pub fn check_config<T: Serialize>(&self, want: &T) -> Result<(), String> {
        let want = serde_json::to_value(want).map_err(|e| e.to_string())?;
        if self.config != want {
            let differs: Vec<String> = match (&self.config, &want) {
                (serde_json::Value::Object(a), serde_json::Value::Object(b)) => b.keys().filter(|k| a.get(*k) != b.get(*k)).map(|k| format!("{k}: {} here, {} asked", a.get(k).map(|v| v.to_string()).unwrap_or("nothing".into()), b[k])).collect(),
                _ => vec![],
            };
            return Err(format!("it is the state of another run ({})", if differs.is_empty() { "another config".to_string() } else { differs.join("; ") }));
        }
        Ok(())
    }
}

/// A run's state with its tensors still on the device: read back and encoded with `encode`
/// (synchronously) or `encode_async` (where the device allows async reads only, WebGPU). Taken
/// between two steps, it holds that step's tensors whatever the run does meanwhile.
pub struct PendingState {
    head: RunState,
    reads: Reads,
}

impl PendingState {
    /// The state of a run at `step` of `config` (of weights of format `of`): its weights `net`,
    /// optimizer `optim` (`net`'s), batch stream `rng`, moving average `ema` if it keeps one.
    #[allow(clippy::too_many_arguments)]
    pub fn new<M: Module, C: Serialize>(of: &str, config: &C, step: usize, rng: &Rng, net: &M, optim: &NamedOptimizer, ema: Option<&M>, extra: serde_json::Value) -> Result<PendingState, String> {
        let (moments, scalars) = optim.pending();
        let mut reads = weight_reads(net, "weights/");
        reads.0.extend(moments.0.into_iter().map(|(n, t, s)| (format!("adam/{n}"), t, s)));
        if let Some(ema) = ema {
            reads.0.extend(weight_reads(ema, "ema/").0);
        }
        let config = serde_json::to_value(config).map_err(|e| e.to_string())?;
        let head = RunState { of: of.to_string(), config, step, rng: rng.clone(), weights: BTreeMap::new(), optimizer: OptimState { tensors: BTreeMap::new(), scalars }, ema: ema.map(|_| BTreeMap::new()), extra };
        Ok(PendingState { head, reads })
    }

    /// The state file's bytes, read back synchronously.
    pub fn encode(self) -> Result<Vec<u8>, String> {
        let values = self.reads.read();
        fill(self.head, values)
    }

    /// The state file's bytes, read back asynchronously.
    pub async fn encode_async(self) -> Result<Vec<u8>, String> {
        let values = self.reads.read_async().await?;
        fill(self.head, values)
    }
}

/// `head` with the values read back (named `KIND/NAME`) in their places, encoded.
fn fill(mut head: RunState, values: BTreeMap<String, TensorData>) -> Result<Vec<u8>, String> {
    for (key, data) in values {
        let (kind, name) = key.split_once('/').expect("every read is named KIND/NAME");
        let map = match kind {
            "weights" => &mut head.weights,
            "adam" => &mut head.optimizer.tensors,
            _ => head.ema.as_mut().expect("EMA reads only where there is one"),
        };
        map.insert(name.to_string(), data);
    }
    head.encode()
}

/// Writes `bytes` to `path` so that a kill at any moment leaves the old file or the new one,
/// never a torn one: written beside, flushed to disk, then renamed over.
#[cfg(not(target_family = "wasm"))]
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut name = path.file_name().map(|n| n.to_os_string()).ok_or_else(|| format!("{} names no file", path.display()))?;
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}
