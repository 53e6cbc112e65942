//! The toy's residual MLP forward pass (`model::Net::forward`) on the host, for the samplers on
//! the CPU (burn Flex): the rows go through the whole network a chunk at a time, each layer one
//! matrix product (`gemm`, the kernel Flex's own matmul calls) accumulated onto its bias, with
//! SiLU and the residual additions done in place between them.
//!
//! Through burn's ops the same pass allocates and walks a fresh [B, W] tensor for every bias,
//! activation and addition, copies each SiLU to and from the host, and runs each block's time
//! layer on B identical rows. In the browser that was 40 % of a sampling frame
//! (`node --cpu-prof`), the matrix products the other 60 %. Here a chunk's three buffers stay in
//! cache from one layer to the next and each time layer is one row.
//!
//! Forward only: training keeps burn's autodiff ops. The tests hold the two passes together.

use crate::model::{Net, TIME_FEATURES};
use burn::nn::Linear;
use burn::tensor::Tensor;

/// Rows per chunk: three [CHUNK, W] buffers of a width-128 network take 384 KiB, inside a core's
/// L2 cache on the machines measured. In the browser build 256 gave faster frames than 128 (gemm
/// copies the weights once per product, so more rows share that copy) and than 512.
const CHUNK: usize = 256;

/// One linear layer's weights on the host: `w` is [d_in, d_out], row-major (burn's layout).
#[derive(Debug, Clone)]
struct Layer {
    w: Vec<f32>,
    b: Vec<f32>,
    d_in: usize,
    d_out: usize,
}

impl Layer {
    fn of(l: &Linear) -> Layer {
        let [d_in, d_out] = l.weight.val().dims();
        let w = read(l.weight.val().flatten(0, 1));
        let b = read(l.bias.as_ref().expect("every layer of the net has a bias").val());
        Layer { w, b, d_in, d_out }
    }

    /// `x W + b` for one row `x`.
    fn row(&self, x: &[f32]) -> Vec<f32> {
        let mut y = self.b.clone();
        for (xi, wi) in x.iter().zip(self.w.chunks_exact(self.d_out)) {
            for (y, w) in y.iter_mut().zip(wi) {
                *y += xi * w;
            }
        }
        y
    }

    /// `dst += x W` for `m` rows `x` ([m, d_in]) and `dst` ([m, d_out]), all row-major.
    fn accumulate(&self, m: usize, x: &[f32], dst: &mut [f32]) {
        let (k, n) = (self.d_in, self.d_out);
        assert!(x.len() == m * k && dst.len() == m * n, "layer {k} -> {n}: {} inputs and {} outputs for {m} rows", x.len(), dst.len());
        if m == 0 || n == 0 || k == 0 {
            return;
        }
        // gemm works in columns: a row-major [m, n] matrix is the column-major [n, m] transpose,
        // so `dst^T += W^T x^T` is handed over, each operand with unit row stride. That way it
        // neither copies (packs) the activations before every product nor scatters its results.
        // SAFETY: the three buffers are contiguous, row-major and of the sizes checked above;
        // `dst` is borrowed mutably, so it aliases neither operand.
        unsafe {
            gemm::gemm(
                n,
                m,
                k,
                dst.as_mut_ptr(),
                n as isize,
                1,
                true,
                self.w.as_ptr(),
                n as isize,
                1,
                x.as_ptr(),
                k as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    }
}

fn read(t: Tensor<1>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 weights after convert")
}

/// `dst`'s rows set to `row`.
fn fill_rows(dst: &mut [f32], row: &[f32]) {
    for r in dst.chunks_exact_mut(row.len()) {
        r.copy_from_slice(row);
    }
}

/// `row` added to each of `dst`'s rows.
fn add_rows(dst: &mut [f32], row: &[f32]) {
    for r in dst.chunks_exact_mut(row.len()) {
        for (d, b) in r.iter_mut().zip(row) {
            *d += b;
        }
    }
}

/// The network's weights, copied to the host once per model.
#[derive(Debug, Clone)]
pub struct Mlp {
    input: Layer,
    /// Each block's `fc1`, `time` and `fc2`.
    blocks: Vec<[Layer; 3]>,
    output: Layer,
    gain: Layer,
}

impl Mlp {
    /// The host copy of `net`'s weights (a synchronous read: the net is on the CPU).
    pub fn of(net: &Net) -> Mlp {
        Mlp {
            input: Layer::of(&net.input),
            blocks: net.blocks.iter().map(|b| [Layer::of(&b.fc1), Layer::of(&b.time), Layer::of(&b.fc2)]).collect(),
            output: Layer::of(&net.output),
            gain: Layer::of(&net.gain),
        }
    }

    /// `Net::forward(u, emb)` for the rows `u` ([n, D], row-major) at one noise level, `emb` its
    /// embedding row (zeros for a blind model).
    pub fn forward(&self, u: &[f32], emb: &[f32; TIME_FEATURES]) -> Vec<f32> {
        let d = self.input.d_in;
        assert_eq!(u.len() % d.max(1), 0, "{} values are not whole rows of {d}", u.len());
        // Per block, fc1's bias plus the time layer's output: one row shared by every sample.
        let shared: Vec<Vec<f32>> = self
            .blocks
            .iter()
            .map(|[fc1, time, _]| time.row(emb).iter().zip(&fc1.b).map(|(t, b)| t + b).collect())
            .collect();
        let mut out = vec![0f32; u.len()];
        let rows = CHUNK * d.max(1);
        #[cfg(not(target_family = "wasm"))]
        {
            use rayon::prelude::*;
            out.par_chunks_mut(rows).zip(u.par_chunks(rows)).for_each(|(o, u)| self.chunk(u, o, &shared));
        }
        #[cfg(target_family = "wasm")]
        for (o, u) in out.chunks_mut(rows).zip(u.chunks(rows)) {
            self.chunk(u, o, &shared);
        }
        out
    }

    /// The forward pass of up to CHUNK rows: `u` in, `out` written.
    fn chunk(&self, u: &[f32], out: &mut [f32], shared: &[Vec<f32>]) {
        let (d, w) = (self.input.d_in, self.input.d_out);
        let m = u.len() / d.max(1);
        let mut h = vec![0f32; m * w];
        let mut a = vec![0f32; m * w];
        let mut z = vec![0f32; m * w];
        // h = u W_in + b_in
        fill_rows(&mut h, &self.input.b);
        self.input.accumulate(m, u, &mut h);
        for ([fc1, _, fc2], shared) in self.blocks.iter().zip(shared) {
            // z = fc1(SiLU(h)) + time(emb)
            crate::host::silu::silu_into(&h, &mut a);
            fill_rows(&mut z, shared);
            fc1.accumulate(m, &a, &mut z);
            // h <- h + fc2(SiLU(z))
            crate::host::silu::silu_into(&z, &mut a);
            add_rows(&mut h, &fc2.b);
            fc2.accumulate(m, &a, &mut h);
        }
        // out = output(z) + gain(z) u, z = SiLU(h)
        crate::host::silu::silu_into(&h, &mut a);
        fill_rows(out, &self.output.b);
        self.output.accumulate(m, &a, out);
        let (wg, bg) = (&self.gain.w, self.gain.b[0]);
        for ((o, u), a) in out.chunks_exact_mut(d).zip(u.chunks_exact(d)).zip(a.chunks_exact(w)) {
            let g = bg + a.iter().zip(wg).map(|(a, w)| a * w).sum::<f32>();
            for (o, u) in o.iter_mut().zip(u) {
                *o += g * u;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{linear, time_features, ModelConfig};
    use crate::rng::Rng;
    use crate::target::Parameterization;
    use burn::tensor::{Device, TensorData};

    /// burn's forward pass and the host's on the same rows, for a net whose every layer
    /// (the zero-initialised output and gain too) has weights.
    fn both(dim: usize, width: usize, depth: usize, n: usize, emb: [f32; TIME_FEATURES]) -> (Vec<f32>, Vec<f32>) {
        let device = Device::flex();
        let cfg = ModelConfig { width, depth, ..ModelConfig::new(Parameterization::Fm, false, dim) };
        let mut net = Net::init(&cfg, 3, &device);
        let mut rng = Rng::new(11);
        net.output = linear(&mut rng, width, dim, false, &device);
        net.gain = linear(&mut rng, width, 1, false, &device);
        let u: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32 * 2.0).collect();
        let ut = Tensor::<2>::from_data(TensorData::new(u.clone(), [n, dim]), &device);
        let et = Tensor::<2>::from_data(TensorData::new(emb.to_vec(), [1, TIME_FEATURES]), &device).repeat_dim(0, n);
        let burn = net.forward(ut, et).into_data().try_to_vec::<f32>().unwrap();
        (burn, Mlp::of(&net).forward(&u, &emb))
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 2e-5 * scale, "{what}: value {i}: burn {x}, host {y}");
        }
    }

    #[test]
    fn host_forward_is_burns_forward() {
        let emb = time_features(0.37);
        // Row counts below, at and across the chunk size; D below, equal to and above the width.
        for (dim, width, depth, n) in [(8, 32, 2, 1), (8, 32, 2, 7), (5, 24, 3, CHUNK), (40, 24, 1, CHUNK + 1), (32, 32, 2, 3 * CHUNK + 5)] {
            let (burn, host) = both(dim, width, depth, n, emb);
            close(&burn, &host, &format!("D {dim}, W {width}, depth {depth}, n {n}"));
        }
        // No residual blocks; a blind model's zero embedding.
        let (burn, host) = both(6, 16, 0, 9, emb);
        close(&burn, &host, "depth 0");
        let (burn, host) = both(6, 16, 2, 9, [0.0; TIME_FEATURES]);
        close(&burn, &host, "blind");
        // The comparison can fail: another embedding gives other values.
        let (burn, _) = both(6, 16, 2, 9, time_features(0.9));
        assert!(burn.iter().zip(&host).any(|(a, b)| (a - b).abs() > 1e-3), "the embedding changes the output");
    }

    #[test]
    fn no_rows_no_output() {
        let net = Net::init(&ModelConfig { width: 8, depth: 1, ..ModelConfig::new(Parameterization::Fm, false, 4) }, 3, &Device::flex());
        assert!(Mlp::of(&net).forward(&[], &time_features(0.5)).is_empty());
    }
}
