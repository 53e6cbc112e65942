//! Passes on the host for the CPU (burn Flex): work that burn's general ops spread over many
//! walks through memory, done in one. The CPU's counterpart of [`crate::fused`]'s GPU kernels;
//! as there, the tests hold each pass to burn's own ops.
//!
//! - [`silu`]: the activation in one vectorised pass (value and, for training, its derivative).
//! - [`mlp`]: the toy's residual MLP forward pass (the samplers' network evaluation), a chunk of
//!   rows at a time through every layer.

pub mod mlp;
pub mod silu;
