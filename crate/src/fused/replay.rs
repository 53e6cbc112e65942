//! The toy's training step recorded once and replayed ([`StepGraph`]): cubecl's graph capture on
//! wgpu, which keeps each recorded dispatch with its pipeline and bind group already made, so a
//! replayed step skips the launch path (kernel lookup, argument metadata, bind groups) and issues
//! the three dispatches again from what it kept. A replay runs on the buffers it was recorded
//! with, so the step's inputs are written into the same batch buffer before each one (the
//! optimizer's numbers ride at its end, [`super::step::SCALARS`]), and the weights and moments are
//! updated where they lie.
//!
//! The capture is driven here rather than through burn's `capture` helper, whose warm-up waits on
//! a synchronous read that a browser cannot make: the step that records is run once as the
//! warm-up (it is a real step: the run goes on from it), then recorded, and every later step is a
//! write and a replay.

use super::copied;
use super::step::{loss_of, StepArgs, StepBuffers};
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn_cubecl::cubecl;
use cubecl::bytes::Bytes;
use cubecl::client::Graph;

/// burn's tensor.
type Burn<const D: usize> = burn::tensor::Tensor<D>;

/// `t`'s cubecl tensor (the fused paths run on cubecl devices only).
fn cube<const D: usize>(t: Burn<D>) -> CubeTensor {
    t.try_into_primitive::<CubeBackend>().expect("the fused step runs on a cubecl device")
}

/// A cubecl tensor as burn's.
fn burn(t: CubeTensor) -> Burn<1> {
    Burn::from_primitive::<CubeBackend>(t)
}

/// The step, recorded: the graph and every buffer it reads or writes, which it holds for its
/// life (a replay reads and writes them whoever else might hold them: see
/// [`StepGraph::exclusive`]).
pub struct StepGraph {
    graph: Graph,
    bufs: StepBuffers,
    args: StepArgs,
}

/// What a recording that failed leaves: the step ran (as the warm-up), so the run goes on from
/// its weights, moments and loss; the reason is for the log.
pub struct NotRecorded {
    pub bufs: [Burn<1>; 3],
    pub loss: Burn<1>,
    pub reason: String,
}

impl StepGraph {
    /// Runs one step on `batch` (a batch and its [`super::step::SCALARS`]) and records it for
    /// replay. The weights and moments are taken; the loss is the step's.
    #[allow(clippy::too_many_arguments)]
    pub fn record(batch: Vec<f32>, projection: Burn<2>, table: Burn<1>, weights: Burn<1>, m1: Burn<1>, m2: Burn<1>, args: StepArgs) -> Result<(StepGraph, Burn<1>), NotRecorded> {
        let client = cube(weights.clone()).client;
        let prepared = client.graph_prepare();
        // Allocated after the preparation, so the pages the recording touches are settled.
        let device = weights.device();
        let n = batch.len();
        let batch = Burn::<1>::from_data(burn::tensor::TensorData::new(batch, [n]), &device);
        let bufs = StepBuffers::new(cube(batch), cube(projection), cube(table), cube(weights), cube(m1), cube(m2), args.record, args.batch);
        // The warm-up: the step itself, which also makes every pipeline and metadata buffer the
        // recorded launches will find.
        bufs.launch(args);
        let recorded = prepared.and_then(|()| client.start_capture()).and_then(|()| {
            bufs.launch(args);
            client.stop_capture()
        });
        match recorded {
            Ok(graph) => {
                let loss = loss_of(burn(bufs.losses.clone()));
                Ok((StepGraph { graph, bufs, args }, loss))
            }
            Err(e) => {
                // A capture prepared and never opened still holds the stream until it is closed.
                if client.is_capturing() {
                    let _ = client.stop_capture();
                }
                let loss = loss_of(burn(bufs.losses.clone()));
                Err(NotRecorded { bufs: [burn(bufs.weights), burn(bufs.m1), burn(bufs.m2)], loss, reason: format!("{e:?}") })
            }
        }
    }

    /// Whether the graph replays a step of `args`' shape and switches.
    pub fn fits(&self, args: StepArgs) -> bool {
        self.args == args
    }

    /// Whether nobody else holds the weights or moments: a replay updates them in place, so a
    /// view handed out (and not copied, [`StepGraph::weights_copy`]) would change under its
    /// holder.
    pub fn exclusive(&self) -> bool {
        self.bufs.weights.can_mut() && self.bufs.m1.can_mut() && self.bufs.m2.can_mut()
    }

    /// One step: `batch` (rows and scalars, as recorded) written over the last, and the step
    /// replayed. Returns the loss, in the buffer every replay writes.
    pub fn replay(&mut self, batch: Vec<f32>) -> Result<Burn<1>, String> {
        use burn::backend::TensorMetadata;
        assert_eq!(batch.len(), self.bufs.batch.shape().num_elements(), "a replayed step takes a batch of the recorded length");
        self.bufs.batch.client.write(&self.bufs.batch.handle, Bytes::from_elems(batch));
        // Safety: every buffer the recording touched is held by `self.bufs` for the graph's life;
        // the weights and moments are held by nobody else (the caller checks `exclusive`), and
        // the writes and reads go through the one client the graph was recorded on.
        unsafe { self.graph.replay() }.map_err(|e| format!("{e:?}"))?;
        // Submitted now rather than at the next step's write, so that the device runs this step
        // while the host builds the next batch.
        self.bufs.batch.client.flush().map_err(|e| format!("{e:?}"))?;
        Ok(loss_of(burn(self.bufs.losses.clone())))
    }

    /// A copy of the weights, which later replays leave alone.
    pub fn weights_copy(&self) -> Burn<1> {
        burn(copied(self.bufs.weights.clone()))
    }

    /// Copies of both moments, likewise.
    pub fn moments_copy(&self) -> [Burn<1>; 2] {
        [&self.bufs.m1, &self.bufs.m2].map(|t| burn(copied(t.clone())))
    }

    /// Ends the recording: the weights and moments, as plain tensors again, and the last batch
    /// written.
    pub fn release(self) -> ([Burn<1>; 3], Burn<1>) {
        let StepGraph { graph, bufs, .. } = self;
        // The graph goes first: once it is dropped nothing replays onto these buffers.
        drop(graph);
        ([burn(bufs.weights), burn(bufs.m1), burn(bufs.m2)], burn(bufs.batch))
    }
}
