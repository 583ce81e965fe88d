//! The separable, sliding-window same-size max-pool against the direct k×k window: identical
//! values and identical gradient routing (first maximum in row-major order), on inputs full of
//! ties (binary masks, three levels) and on random ones, for several kernels.

use candle_core::{Device, Tensor, Var};
use scfnet_ops::{max_pool2d, max_pool2d_same, Pool2d};

fn direct(x: &Tensor, k: usize) -> Tensor {
    max_pool2d(
        x,
        Pool2d {
            kernel: (k, k),
            stride: (1, 1),
            padding: (k / 2, k / 2),
        },
    )
    .unwrap()
}

fn value_and_grad(x0: &Tensor, r: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> (Vec<f64>, Vec<f64>) {
    let x = Var::from_tensor(x0).unwrap();
    let y = f(x.as_tensor());
    let g = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    (flat(&y), flat(g.get(x.as_tensor()).unwrap()))
}

#[test]
fn separable_pool_equals_the_direct_window() {
    let dev = Device::Cpu;
    let shape = (2, 3, 17, 13);
    let levels = Tensor::rand(0f64, 3.0, shape, &dev)
        .unwrap()
        .floor()
        .unwrap();
    let binary = Tensor::rand(0f64, 1.0, shape, &dev)
        .unwrap()
        .ge(0.7)
        .unwrap()
        .to_dtype(candle_core::DType::F64)
        .unwrap();
    let random = Tensor::randn(0f64, 1.0, shape, &dev).unwrap();
    let r = Tensor::randn(0f64, 1.0, shape, &dev).unwrap();
    for (name, x) in [
        ("levels", &levels),
        ("binary", &binary),
        ("random", &random),
    ] {
        for k in [1, 3, 5, 13] {
            let a = value_and_grad(x, &r, |t| max_pool2d_same(t, k).unwrap());
            let b = value_and_grad(x, &r, |t| direct(t, k));
            assert_eq!(a.0, b.0, "{name} k={k}: values");
            // Same routing: the same pixels receive gradient; sums of several contributions may
            // differ in the last bit by their order.
            let routed = |g: &[f64]| g.iter().map(|v| *v != 0.0).collect::<Vec<_>>();
            assert!(
                routed(&a.1) == routed(&b.1),
                "{name} k={k}: gradient routing differs"
            );
            let worst =
                a.1.iter()
                    .zip(&b.1)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f64::max);
            assert!(
                worst < 1e-12,
                "{name} k={k}: gradients differ by {worst:.2e}"
            );
        }
    }
}
