//! The oracle's analysis as one hand-written WGSL kernel (`shaders/oracle.wgsl`), launched on the
//! wgpu device that burn uses (`Device::wgpu_options().init_with_setup()` hands out its handles).
//!
//! One workgroup per query point does what the tensor path ([`Oracle::analyze`]) does in some
//! forty tensor operations: the nearest data point, the expanded squared distances, the
//! log-sum-exp over the data at every grid level, the posterior over the grid, `E_marg`, and the
//! posterior-weighted denoisers that make `f*(u)` and `grad E_marg`. The tensor path stays the
//! reference and the fallback (CPU, and any size the kernel's workgroup memory cannot hold); the
//! tests hold the two to 1e-4.

use super::{Level, Oracle};
use crate::sample::read_f32;
use burn::backend::wgpu::wgpu;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};

/// The kernel's source, the same file the browser's build compiles.
pub const SOURCE: &str = include_str!("../../../shaders/oracle.wgsl");
/// Threads per workgroup (`WG` in the shader).
pub const WORKGROUP: u32 = 64;
pub use super::{MAX_GRID, MAX_POINTS};
/// Columns of the coefficient table (`NC` and the `C_*` indices in the shader).
const NC: usize = 11;
/// Workgroups per dispatch dimension (WebGPU's guaranteed limit); more points go in y.
const MAX_GROUPS_X: usize = 65535;

/// What the kernel returns for M query points (row-major, like [`super::Analysis`]).
#[derive(Clone, Debug)]
pub struct KernelAnalysis {
    /// `p(t_k | u)`, [M, K].
    pub posterior: Vec<f32>,
    /// `E_marg(u)`, [M].
    pub energy: Vec<f32>,
    /// The gain `E[lambda | u]`, [M].
    pub gain: Vec<f32>,
    /// `f*(u)`, [M, D].
    pub field: Vec<f32>,
    /// `grad E_marg(u)`, [M, D].
    pub grad_energy: Vec<f32>,
}

/// The oracle's tables on a wgpu device, ready to evaluate query points.
pub struct OracleKernel {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    data: wgpu::Buffer,
    coef: wgpu::Buffer,
    n: usize,
    k: usize,
    d: usize,
}

impl OracleKernel {
    /// Uploads `oracle`'s data tables and per-level coefficients to `device`.
    pub fn new(oracle: &Oracle, device: &wgpu::Device, queue: &wgpu::Queue) -> Result<OracleKernel, String> {
        let (n, k, d) = (oracle.n, oracle.grid.len(), oracle.dim);
        if n > MAX_POINTS || k > MAX_GRID {
            return Err(format!("the oracle kernel holds up to {MAX_POINTS} data points and {MAX_GRID} grid levels (got {n} and {k}); use the tensor path"));
        }
        let mut tables = read_f32(oracle.data.clone());
        tables.extend(read_f32(oracle.data_norm2.clone()));
        tables.extend(read_f32(oracle.cross.clone()));
        tables.extend(read_f32(oracle.pair_dist2.clone()));
        let p = oracle.param;
        let coef: Vec<f32> = oracle
            .grid
            .iter()
            .zip(&oracle.log_q)
            .flat_map(|(&t, &log_q)| {
                let l = Level::at(p, t);
                // The order of the shader's C_* constants.
                [l.delta, l.a, l.inv_2b2, log_q + oracle.log_norm(t), l.alpha, l.a_b2, l.d_b, l.inv_b2, l.field_x, l.grad_x, l.lambda]
            })
            .map(|v| v as f32)
            .collect();
        debug_assert_eq!(coef.len(), k * NC);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some("oracle.wgsl"), source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(SOURCE)) });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("oracle"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Ok(OracleKernel {
            data: storage(device, "oracle data", &tables),
            coef: storage(device, "oracle coefficients", &coef),
            device: device.clone(),
            queue: queue.clone(),
            pipeline,
            n,
            k,
            d,
        })
    }

    /// Evaluates the oracle at the rows of `u` ([M, D], row-major): one launch, one readback.
    pub async fn analyze(&self, u: &[f32]) -> Result<KernelAnalysis, String> {
        let (n, k, d) = (self.n, self.k, self.d);
        if u.len() % d != 0 {
            return Err(format!("{} values are not rows of D = {d}", u.len()));
        }
        let m = u.len() / d;
        if m == 0 {
            return Ok(KernelAnalysis { posterior: vec![], energy: vec![], gain: vec![], field: vec![], grad_energy: vec![] });
        }
        let stride = k + 2 + 2 * d;
        let sizes = [m as u32, n as u32, k as u32, d as u32];
        let params = buffer(&self.device, "oracle params", sizes.iter().flat_map(|v| v.to_le_bytes()), wgpu::BufferUsages::UNIFORM);
        let input = storage(&self.device, "oracle queries", u);
        let size = (m * stride * 4) as u64;
        let out = self.device.create_buffer(&wgpu::BufferDescriptor { label: Some("oracle out"), size, usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC, mapped_at_creation: false });
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor { label: Some("oracle staging"), size, usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("oracle"),
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: input.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 2, resource: self.data.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 3, resource: self.coef.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 4, resource: out.as_entire_binding() },
            ],
        });
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("oracle") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("oracle"), timestamp_writes: None });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            let x = m.min(MAX_GROUPS_X);
            let y = m.div_ceil(MAX_GROUPS_X);
            pass.dispatch_workgroups(x as u32, y as u32, 1);
        }
        encoder.copy_buffer_to_buffer(&out, 0, &staging, 0, size);
        self.queue.submit(Some(encoder.finish()));
        let flat = read_back(&self.device, &staging).await?;

        let mut r = KernelAnalysis { posterior: Vec::with_capacity(m * k), energy: Vec::with_capacity(m), gain: Vec::with_capacity(m), field: Vec::with_capacity(m * d), grad_energy: Vec::with_capacity(m * d) };
        for row in flat.chunks_exact(stride) {
            r.posterior.extend_from_slice(&row[..k]);
            r.energy.push(row[k]);
            r.gain.push(row[k + 1]);
            r.field.extend_from_slice(&row[k + 2..k + 2 + d]);
            r.grad_energy.extend_from_slice(&row[k + 2 + d..]);
        }
        Ok(r)
    }
}

/// A read-only storage buffer holding `values`.
fn storage(device: &wgpu::Device, label: &str, values: &[f32]) -> wgpu::Buffer {
    buffer(device, label, values.iter().flat_map(|v| v.to_le_bytes()), wgpu::BufferUsages::STORAGE)
}

/// A buffer initialised with `bytes`.
fn buffer(device: &wgpu::Device, label: &str, bytes: impl Iterator<Item = u8>, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents: &bytes.collect::<Vec<u8>>(), usage })
}

/// Maps `buffer` for reading and returns its floats. In the browser the callback comes from the
/// event loop; natively the device is polled until it has.
async fn read_back(device: &wgpu::Device, buffer: &wgpu::Buffer) -> Result<Vec<f32>, String> {
    let done = MapFuture::default();
    let state = done.state.clone();
    buffer.slice(..).map_async(wgpu::MapMode::Read, move |result| {
        let mut s = state.lock().unwrap();
        s.result = Some(result.map_err(|e| format!("the oracle's output could not be mapped: {e}")));
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    });
    #[cfg(not(target_family = "wasm"))]
    device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| format!("waiting for the GPU failed: {e}"))?;
    #[cfg(target_family = "wasm")]
    let _ = device;
    done.await?;
    let values = {
        let bytes = buffer.slice(..).get_mapped_range().map_err(|e| format!("the oracle's output could not be read: {e}"))?;
        bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    };
    buffer.unmap();
    Ok(values)
}

#[derive(Default)]
struct MapState {
    result: Option<Result<(), String>>,
    waker: Option<std::task::Waker>,
}

/// Resolves when `map_async`'s callback has run.
#[derive(Default)]
struct MapFuture {
    state: Arc<Mutex<MapState>>,
}

impl std::future::Future for MapFuture {
    type Output = Result<(), String>;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let mut s = self.state.lock().unwrap();
        match s.result.take() {
            Some(r) => std::task::Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}
