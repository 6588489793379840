//! GEMM: the triple loop for every transpose and alpha/beta, beta == 0, the classical error bound.

use super::*;

fn gemm_dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        2usize..12,
        prop::sample::select(vec![15usize, 16, 17, 31, 32, 33])
    ]
}

fn gemm_case() -> impl Strategy<Value = (GemmShape, GemmConfig, u64)> {
    let alpha = prop::sample::select(vec![1.0f32, 0.5, -2.0, 1.7]);
    let beta = prop::sample::select(vec![0.0f32, 1.0, -0.75]);
    (
        gemm_dim(),
        gemm_dim(),
        gemm_dim(),
        any::<bool>(),
        any::<bool>(),
        alpha,
        beta,
        any::<u64>(),
    )
        .prop_map(|(m, n, k, trans_a, trans_b, alpha, beta, seed)| {
            (
                GemmShape { m, n, k },
                GemmConfig {
                    trans_a,
                    trans_b,
                    alpha,
                    beta,
                    epilogue: llama_kernels::GemmEpilogue::Linear,
                },
                seed,
            )
        })
}

/// A stored `(rows, cols)` matrix as a row-major Vec<Vec<f64>>, transposed when `trans`.
fn matrix<T: Elem>(data: &[T], rows: usize, cols: usize, trans: bool) -> Vec<Vec<f64>> {
    let stored: Vec<Vec<f64>> = data.chunks(cols).map(to_f64_vec).collect();
    if !trans {
        return stored;
    }
    (0..cols).map(|c| (0..rows).map(|r| stored[r][c]).collect()).collect()
}

proptest! {
    #![proptest_config(common::seed::config(CASES))]

    /// gemm_f64 and gemm::<T> equal a triple loop over explicitly transposed matrices, for all four
    /// transpose combinations, sizes 1 and around 16/32, and alpha/beta.
    #[test]
    fn gemm_equals_a_triple_loop((shape, cfg, seed) in gemm_case()) {
        let GemmShape { m, n, k } = shape;
        let a = random_vec::<bf16>(m * k, seed, 1.0);
        let b = random_vec::<bf16>(k * n, seed ^ 1, 1.0);
        let c = random_vec::<bf16>(m * n, seed ^ 2, 1.0);
        // op(A): stored (m, k), or (k, m) read transposed; op(B): stored (k, n), or (n, k) read transposed.
        let op_a = if cfg.trans_a { matrix(&a, k, m, true) } else { matrix(&a, m, k, false) };
        let op_b = if cfg.trans_b { matrix(&b, n, k, true) } else { matrix(&b, k, n, false) };
        let mut expected = vec![0.0; m * n];
        for i in 0..m { for j in 0..n {
            let acc: f64 = (0..k).map(|p| op_a[i][p] * op_b[p][j]).sum();
            expected[i * n + j] = cfg.alpha as f64 * acc + cfg.beta as f64 * c[i * n + j].to_f64();
        }}
        let oracle = reference::gemm_f64(&a, &b, &c, shape, cfg).unwrap();
        check(reference::check_close(&oracle, &expected, 1e-12, 1e-12))?;
        let out = to_f64_vec(&reference::gemm(&a, &b, &c, shape, cfg).unwrap());
        check(Tolerance::ulps(DType::BF16, 1.0).check(&out, &expected))?;
        let bound = reference::gemm_abs_bound(&a, &b, &c, shape, cfg).unwrap();
        prop_assert!(bound.iter().zip(&oracle).all(|(bd, o)| bd >= &(o.abs() * (1.0 - 1e-12))));
    }

    /// With beta == 0 C is not read: NaN in C changes nothing.
    #[test]
    fn gemm_with_zero_beta_never_reads_c((shape, cfg, seed) in gemm_case()) {
        let cfg = GemmConfig { beta: 0.0, ..cfg };
        let a = random_vec::<f16>(shape.m * shape.k, seed, 1.0);
        let b = random_vec::<f16>(shape.k * shape.n, seed ^ 1, 1.0);
        let zeros = vec![f16::ZERO; shape.m * shape.n];
        let nans = vec![f16::NAN; shape.m * shape.n];
        let out = reference::gemm(&a, &b, &nans, shape, cfg).unwrap();
        prop_assert!(bits_eq(&out, &reference::gemm(&a, &b, &zeros, shape, cfg).unwrap()));
        prop_assert!(reference::gemm_naive(&a, &b, &nans, shape, cfg).unwrap().iter().all(|x| !x.is_nan()));
        prop_assert!(reference::gemm_f64(&a, &b, &nans, shape, cfg).unwrap().iter().all(|x| !x.is_nan()));
    }

    /// The naive same-precision GEMM obeys the classical bound γ_(k+3)·Σ|a||b|, and the once-rounded
    /// reference passes the 2x rule against it.
    #[test]
    fn gemm_naive_obeys_the_error_bound_and_reference_passes_2x_rule((shape, cfg, seed) in gemm_case()) {
        fn body<T: Elem>(shape: GemmShape, cfg: GemmConfig, seed: u64) -> std::result::Result<(), TestCaseError> {
            let a = random_vec::<T>(shape.m * shape.k, seed, 1.0);
            let b = random_vec::<T>(shape.k * shape.n, seed ^ 1, 1.0);
            let c = random_vec::<T>(shape.m * shape.n, seed ^ 2, 1.0);
            let oracle = reference::gemm_f64(&a, &b, &c, shape, cfg).unwrap();
            let naive = to_f64_vec(&reference::gemm_naive(&a, &b, &c, shape, cfg).unwrap());
            let bound = reference::gemm_abs_bound(&a, &b, &c, shape, cfg).unwrap();
            let nu = (shape.k + 3) as f64 * T::EPSILON_HALF_ULP;
            // Each rounding into T's subnormal range can lose half the smallest subnormal, whatever the bound.
            // (check_abs_bound adds one such floor itself.)
            let atol = (shape.k + 2) as f64 * reference::rounding_floor(T::DTYPE);
            check(reference::check_abs_bound(T::DTYPE, &naive, &oracle, &bound, nu / (1.0 - nu), atol))?;
            let out = to_f64_vec(&reference::gemm(&a, &b, &c, shape, cfg).unwrap());
            check(reference::check_2x_rule(T::DTYPE, &out, &naive, &oracle, 1e-5))?;
            Ok(())
        }
        body::<f32>(shape, cfg, seed)?;
        body::<f16>(shape, cfg, seed)?;
        body::<bf16>(shape, cfg, seed)?;
    }
}
