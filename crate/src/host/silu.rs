//! SiLU, `x sigmoid(x)`, on the host: one vectorised pass (AVX2 with FMA natively, WebAssembly
//! SIMD in the browser), where burn Flex's sigmoid calls the scalar `expf` once per element.
//! `model::silu` joins it to burn's graph; [`super::mlp`] calls it between its matrix products.

/// `silu(v)` and, when `grad`, `silu'(v) = s (1 + v (1 - s))`, `s = sigmoid(v)`, in one pass.
pub fn host_silu(v: &[f32], grad: bool) -> (Vec<f32>, Vec<f32>) {
    let mut c = vec![0f32; v.len()];
    let mut g = vec![0f32; if grad { v.len() } else { 0 }];
    pass(v, &mut c, &mut g);
    (c, g)
}

/// `silu(v)` written into `c` (of `v`'s length).
pub fn silu_into(v: &[f32], c: &mut [f32]) {
    assert_eq!(v.len(), c.len(), "silu_into: input and output lengths differ");
    pass(v, c, &mut []);
}

/// `c = silu(v)` and, unless `g` is empty, `g = silu'(v)`: the SIMD pass, then the scalar tail.
fn pass(v: &[f32], c: &mut [f32], g: &mut [f32]) {
    let grad = !g.is_empty();
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let done = if grad { simd128::silu::<true>(v, c, g) } else { simd128::silu::<false>(v, c, g) };
    #[cfg(target_arch = "x86_64")]
    let done = if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        unsafe { silu_avx2(v, c, g) };
        v.len()
    } else {
        0
    };
    #[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
    let done = 0;
    silu_scalar(&v[done..], &mut c[done..], if grad { &mut g[done..] } else { &mut [] });
}

/// The pass itself; `g` empty when no gradient is wanted. Auto-vectorised natively.
#[inline(always)]
fn silu_scalar(v: &[f32], c: &mut [f32], g: &mut [f32]) {
    if g.is_empty() {
        for (c, &x) in c.iter_mut().zip(v) {
            *c = x * sigmoid(x);
        }
    } else {
        for ((c, g), &x) in c.iter_mut().zip(g.iter_mut()).zip(v) {
            let s = sigmoid(x);
            *c = x * s;
            *g = s * (1.0 + x * (1.0 - s));
        }
    }
}

/// The same loop compiled for 8-lane AVX2 with FMA (the native build's baseline is SSE2).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_avx2(v: &[f32], c: &mut [f32], g: &mut [f32]) {
    silu_scalar(v, c, g)
}

/// `sigmoid(x)` through `e = exp(-|x|)`, branch-free so a loop over it vectorises.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    let d = 1.0 / (1.0 + e);
    if x >= 0.0 {
        d
    } else {
        e * d
    }
}

/// Cephes' single-precision `exp` (within 2 ulp), shared by the scalar and the SIMD pass: below
/// `EXP_MIN` the result is clamped; `v = n ln 2 + r` with ln 2 in two parts; `e^r = 1 + r + r^2
/// p(r)` with `p`'s coefficients highest power first. Both passes do the same operations in the
/// same order (no fused multiply-add), so native and browser runs give the same bits.
const EXP_MIN: f32 = -87.0;
const EXP_LN2_HI: f32 = 0.693_359_4;
const EXP_LN2_LO: f32 = -2.121_944_4e-4;
const EXP_POLY: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];
/// 1.5 * 2^23: adding it to a float of magnitude below 2^22 rounds it to an integer, which is
/// then in the low mantissa bits.
const EXP_SHIFTER: f32 = 12_582_912.0;

/// `exp(v)` for `v <= 0`, branch-free and without float-to-int casts (Rust's saturating casts do
/// not vectorise on x86).
#[inline(always)]
fn exp_nonpositive(v: f32) -> f32 {
    let v = v.max(EXP_MIN);
    let t = v * std::f32::consts::LOG2_E + EXP_SHIFTER;
    let n = t - EXP_SHIFTER;
    let r = v - n * EXP_LN2_HI - n * EXP_LN2_LO;
    // p(r) by Estrin's scheme, in the SIMD pass's order, so that the two give the same bits.
    let [p0, p1, p2, p3, p4, p5] = EXP_POLY;
    let r2 = r * r;
    let p = ((p0 * r + p1) * r2 + (p2 * r + p3)) * r2 + (p4 * r + p5);
    let e = p * r2 + r + 1.0;
    // 2^n from n's bits: (n + 127) << 23.
    let n_bits = (t.to_bits() as i32).wrapping_sub(EXP_SHIFTER.to_bits() as i32);
    e * f32::from_bits((n_bits.wrapping_add(127) << 23) as u32)
}

/// The same pass with explicit WebAssembly SIMD: the browser build is optimised for size, which
/// turns LLVM's loop vectoriser off.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use super::{EXP_LN2_HI, EXP_LN2_LO, EXP_MIN, EXP_POLY, EXP_SHIFTER};
    use core::arch::wasm32::*;

    /// The pass's constants, each splat over four lanes.
    ///
    /// Made once per pass and kept opaque to the compiler (read back through a volatile load):
    /// otherwise each stays a `v128.const` inside the loop, and the engine, which does not hoist
    /// them, builds every one anew (several instructions each) for every four lanes.
    struct Consts {
        min: v128,
        log2e: v128,
        shifter: v128,
        shifter_bits: v128,
        ln2_hi: v128,
        ln2_lo: v128,
        poly: [v128; 6],
        one: v128,
        zero: v128,
        bias: v128,
        sign: v128,
    }

    fn opaque(v: v128) -> v128 {
        // SAFETY: a read of a local, initialised value.
        unsafe { core::ptr::read_volatile(&v) }
    }

    impl Consts {
        fn new() -> Consts {
            let f = |x: f32| opaque(f32x4_splat(x));
            Consts {
                min: f(EXP_MIN),
                log2e: f(std::f32::consts::LOG2_E),
                shifter: f(EXP_SHIFTER),
                shifter_bits: opaque(i32x4_splat(EXP_SHIFTER.to_bits() as i32)),
                ln2_hi: f(EXP_LN2_HI),
                ln2_lo: f(EXP_LN2_LO),
                poly: EXP_POLY.map(f),
                one: f(1.0),
                zero: f(0.0),
                bias: opaque(i32x4_splat(127)),
                sign: opaque(u32x4_splat(0x8000_0000)),
            }
        }

        /// `sigmoid(x)` in four lanes: the scalar `sigmoid` and `exp_nonpositive`, written out
        /// (the polynomial in another order).
        #[inline(always)]
        fn sigmoid(&self, x: v128) -> v128 {
            // -|x| as x with its sign bit set (one instruction; abs and neg take three each).
            // pmax (`a < b ? b : a`), not max: wasm's max has NaN and signed-zero rules that
            // x86's maxps lacks, so engines lower it to several instructions. -|x| is never -0
            // against EXP_MIN, and a NaN x stays NaN in the product x sigmoid(x).
            let a = f32x4_pmax(self.min, v128_or(x, self.sign));
            // t's low mantissa bits hold the integer n = round(a log2 e) (see
            // `exp_nonpositive`): 2^n is built from them by integer arithmetic, with no
            // float-to-int conversion (which has no single x86 instruction to lower to).
            let t = f32x4_add(f32x4_mul(a, self.log2e), self.shifter);
            let k = f32x4_sub(t, self.shifter);
            let r = f32x4_sub(f32x4_sub(a, f32x4_mul(k, self.ln2_hi)), f32x4_mul(k, self.ln2_lo));
            // p(r) by Estrin's scheme, not Horner's: half the chain of dependent operations, so
            // more of the loop's vectors are in flight at once (the pass is bound by latency).
            // The scalar pass uses the same order.
            let [p0, p1, p2, p3, p4, p5] = self.poly;
            let r2 = f32x4_mul(r, r);
            let q01 = f32x4_add(f32x4_mul(p0, r), p1);
            let q23 = f32x4_add(f32x4_mul(p2, r), p3);
            let q45 = f32x4_add(f32x4_mul(p4, r), p5);
            let p = f32x4_add(f32x4_mul(f32x4_add(f32x4_mul(q01, r2), q23), r2), q45);
            let e = f32x4_add(f32x4_add(f32x4_mul(p, r2), r), self.one);
            let n_bits = i32x4_sub(t, self.shifter_bits);
            let e = f32x4_mul(e, i32x4_shl(i32x4_add(n_bits, self.bias), 23));
            let d = f32x4_div(self.one, f32x4_add(self.one, e));
            v128_bitselect(d, f32x4_mul(e, d), f32x4_ge(x, self.zero))
        }
    }

    /// Fills `c` (and `g` when `GRAD`) eight lanes at a time, as two independent vectors;
    /// returns how many elements it did.
    pub fn silu<const GRAD: bool>(v: &[f32], c: &mut [f32], g: &mut [f32]) -> usize {
        let n = v.len() / 8 * 8;
        assert!(c.len() >= n && (!GRAD || g.len() >= n));
        let k = Consts::new();
        let one = k.one;
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n <= v.len(), c.len() (and g.len() when GRAD, checked above);
            // v128 loads and stores have no alignment requirement.
            // (Written twice rather than as a loop over the two: the size-optimised build would
            // keep that loop, iterator calls and all.)
            unsafe {
                let x0 = v128_load(v.as_ptr().add(i) as *const v128);
                let x1 = v128_load(v.as_ptr().add(i + 4) as *const v128);
                let (s0, s1) = (k.sigmoid(x0), k.sigmoid(x1));
                v128_store(c.as_mut_ptr().add(i) as *mut v128, f32x4_mul(x0, s0));
                v128_store(c.as_mut_ptr().add(i + 4) as *mut v128, f32x4_mul(x1, s1));
                if GRAD {
                    let dv = |x, s| f32x4_mul(s, f32x4_add(one, f32x4_mul(x, f32x4_sub(one, s))));
                    v128_store(g.as_mut_ptr().add(i) as *mut v128, dv(x0, s0));
                    v128_store(g.as_mut_ptr().add(i + 4) as *mut v128, dv(x1, s1));
                }
            }
            i += 8;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_silu_matches_the_exact_activation() {
        // Every magnitude the network meets and the saturated ends, both signs. Below -87 the
        // exponential is clamped (at e^-87 ~ 1.6e-38): the activation is then ~1e-36 instead of
        // smaller still, an absolute error far below anything f32 arithmetic downstream resolves.
        let v: Vec<f32> = (-4000..=4000).map(|i| i as f32 * 0.0237).chain([-200.0, -88.0, -87.5, 0.0, -0.0, 88.0, 1e-30, -1e-30, 200.0]).collect();
        let (c, g) = host_silu(&v, true);
        for (i, &x) in v.iter().enumerate() {
            let xd = x as f64;
            let s = 1.0 / (1.0 + (-xd).exp());
            let (want_c, want_g) = (xd * s, s * (1.0 + xd * (1.0 - s)));
            assert!((c[i] as f64 - want_c).abs() <= 4e-7 * want_c.abs() + 1e-35, "silu({x}) = {}, want {want_c}", c[i]);
            assert!((g[i] as f64 - want_g).abs() <= 1e-6, "silu'({x}) = {}, want {want_g}", g[i]);
        }
        assert!(host_silu(&v, false).1.is_empty());
    }

    #[test]
    fn silu_into_is_host_silu_without_the_gradient() {
        // Lengths around the SIMD width, so both the vector body and the scalar tail run.
        for n in [0, 1, 3, 4, 5, 8, 131] {
            let v: Vec<f32> = (0..n).map(|i| (i as f32 - 40.0) * 0.37).collect();
            let mut c = vec![f32::NAN; n];
            silu_into(&v, &mut c);
            assert_eq!(c, host_silu(&v, false).0, "n = {n}");
        }
    }
}
