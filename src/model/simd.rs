//! [`simd_fn!`]: the CPU kernels' hot loops, compiled for the SIMD the machine has.

/// Defines `fn $name(args)` whose body is compiled twice natively on x86-64, plain (SSE2) and
/// with AVX2 and FMA, the second called where the CPU has them; in wasm once, with `simd128`.
/// Each hot loop is its own such function, with no branch on a run-time enum inside, so that
/// LLVM vectorises it (a closure or a `match` per element keeps it scalar).
macro_rules! simd_fn {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU was just checked to have both features.
                    return unsafe { avx2($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}
