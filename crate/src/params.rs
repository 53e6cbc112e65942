//! A module's float parameters by name: the names its weights' files use (`blocks.0.fc1.weight`),
//! their shapes, their values read back in one transaction (synchronously, or asynchronously
//! where the device allows only that), and values put back by name. What the optimizer keys its
//! state by (`optimizer.rs`) and what a run's state file holds (`resume.rs`).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData, Transaction};
use std::collections::BTreeMap;

/// Tensors still on the device, each with the name it is stored under and the shape it is read
/// back in: what a state file is made of, read back at once (`read`, or `read_async` where the
/// device allows async reads only).
#[derive(Default)]
pub struct Reads(pub Vec<(String, Tensor<1>, Vec<usize>)>);

impl Reads {
    fn transaction(&self) -> Transaction {
        self.0.iter().fold(Transaction::default(), |tx, (_, t, _)| tx.register(t.clone()))
    }

    fn assemble(&self, data: Vec<TensorData>) -> BTreeMap<String, TensorData> {
        self.0.iter().zip(data).map(|((name, _, shape), d)| (name.clone(), TensorData::new(d.convert::<f32>().try_into_vec::<f32>().expect("f32 after convert"), shape.clone()))).collect()
    }

    /// The values, read back synchronously (native, or the CPU in the browser).
    pub fn read(self) -> BTreeMap<String, TensorData> {
        let data = self.transaction().execute();
        self.assemble(data)
    }

    /// The values, read back asynchronously (WebGPU).
    pub async fn read_async(self) -> Result<BTreeMap<String, TensorData>, String> {
        let data = self.transaction().execute_async().await.map_err(|e| format!("reading the state back failed: {e:?}"))?;
        Ok(self.assemble(data))
    }
}

/// Every float parameter by name, flattened, with its shape (still on the device).
struct Gather {
    path: Vec<String>,
    out: Reads,
}

impl ModuleVisitor for Gather {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val().inner(); // the values alone: one transaction reads every part
        let dims = t.dims().to_vec();
        self.out.0.push((self.path.join("."), t.reshape([dims.iter().product::<usize>()]), dims));
    }
}

/// A module's weights by name, still on the device, `prefix` before each name.
pub fn weight_reads<M: Module>(m: &M, prefix: &str) -> Reads {
    let mut g = Gather { path: vec![], out: Reads::default() };
    m.visit(&mut g);
    Reads(g.out.0.into_iter().map(|(n, t, s)| (format!("{prefix}{n}"), t, s)).collect())
}

/// A module's weights by name, as f32 host data (read back synchronously).
pub fn weights<M: Module>(m: &M) -> BTreeMap<String, TensorData> {
    weight_reads(m, "").read()
}

/// Puts `values` (checked to cover every parameter with its shape) into a module, keeping each
/// parameter's id and whether it is trained.
struct Put<'a> {
    path: Vec<String>,
    values: &'a BTreeMap<String, TensorData>,
}

impl ModuleMapper for Put<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let data = self.values[&self.path.join(".")].clone();
        param.map(|t| {
            let put = Tensor::from_data(data, &t.device());
            if t.is_require_grad() {
                put.require_grad()
            } else {
                put
            }
        })
    }
}

/// `m` with the weights `values` (every parameter's name and shape checked first).
pub fn with_weights<M: Module>(m: M, values: &BTreeMap<String, TensorData>, what: &str) -> Result<M, String> {
    let params = param_shapes(&m);
    for (name, shape) in &params {
        let v = values.get(name).ok_or_else(|| format!("{what} has no values for the parameter {name}"))?;
        if v.shape().to_vec() != *shape {
            return Err(format!("{what}: {name} is {:?}, the model's is {shape:?}", v.shape().to_vec()));
        }
    }
    if let Some(extra) = values.keys().find(|k| !params.iter().any(|(n, _)| n == *k)) {
        return Err(format!("{what} has values for {extra}, which the model does not have"));
    }
    Ok(m.map(&mut Put { path: vec![], values }))
}

/// Each parameter replaced by its part of `flat` (the parameters flattened and put end to end in
/// visiting order, as [`weight_reads`] lists them), on `flat`'s device: views where the backend
/// can, no host round trip.
pub fn from_flat<M: Module>(m: M, flat: &Tensor<1>) -> M {
    struct Slices<'a> {
        flat: &'a Tensor<1>,
        off: usize,
    }
    impl ModuleMapper for Slices<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|t| {
                let dims: [usize; D] = t.dims();
                let n = dims.iter().product::<usize>();
                let part = self.flat.clone().slice([self.off..self.off + n]).reshape(dims);
                self.off += n;
                part
            })
        }
    }
    m.map(&mut Slices { flat, off: 0 })
}

/// Every float parameter's name and shape, in visiting order.
pub fn param_shapes<M: Module>(m: &M) -> Vec<(String, Vec<usize>)> {
    weight_reads(m, "").0.into_iter().map(|(name, _, shape)| (name, shape)).collect()
}
