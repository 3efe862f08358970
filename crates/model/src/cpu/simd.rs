//! Code compiled for the best instruction set the CPU has, chosen when it
//! runs, and the vectorizable math the kernel's loops call: an exp-based
//! sigmoid and tanh (Cephes' expf polynomial; the CPU backends' own `tanh`
//! is several times slower).

/// `$name` runs `$inner` compiled for the best instruction set the CPU has
/// (AVX-512, else AVX2 with FMA, else the build's baseline). `$inner` must be
/// `#[inline(always)]`, so that its loops are compiled inside each
/// `#[target_feature]` copy and vectorized for it.
macro_rules! best_instructions {
    ($vis:vis fn $name:ident = $inner:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?) => {
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $inner($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $inner($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the instructions `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above, for `avx2`.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $inner($($arg),*)
        }
    };
}

pub(crate) use best_instructions;

/// eˣ for |x| up to about 88, to within a couple of ulps: 2ⁿ · e^r with
/// n = round(x / ln 2) and a degree-7 polynomial for e^r (Cephes' expf).
/// Branch-free, so the loops calling it vectorize.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // Adding 1.5 · 2²³ rounds to an integer, which lands in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // x − n ln 2, with ln 2 in two parts so that the product is exact.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let e_r = p * r * r + r + 1.0;
    let two_n = f32::from_bits(
        (shifted
            .to_bits()
            .wrapping_sub(ROUND.to_bits())
            .wrapping_add(127))
            << 23,
    );
    e_r * two_n
}

#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_sigmoid_and_tanh_match_the_standard_library() {
        let mut worst = [0.0f32; 3];
        for k in -20_000..=20_000 {
            let x = k as f32 * 0.005; // −100 … 100
            let e = x.clamp(-87.0, 88.0);
            worst[0] = worst[0].max(((exp(e) - e.exp()) / e.exp()).abs());
            worst[1] = worst[1].max((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs());
            worst[2] = worst[2].max((tanh(x) - x.tanh()).abs());
        }
        assert!(worst[0] < 3e-7, "exp: relative error {}", worst[0]);
        assert!(worst[1] < 2e-7, "sigmoid: error {}", worst[1]);
        assert!(worst[2] < 3e-7, "tanh: error {}", worst[2]);
        assert_eq!(exp(0.0), 1.0);
        assert!(sigmoid(-200.0) < 1e-37);
        assert_eq!(tanh(200.0), 1.0);
        assert_eq!(tanh(-200.0), -1.0);
    }
}
