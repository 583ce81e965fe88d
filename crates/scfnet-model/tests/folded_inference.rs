//! The inference path (BatchNorms folded into the convolutions, bias and activation fused) against
//! the training graph's eval mode, on the same synthetic weights with running statistics
//! calibrated on the input: in f64 the side outputs agree to 1e-10 (the fold is exact); in f32 the
//! student's probability map agrees to 1e-5 and its 8-bit maps differ nowhere by more than one grey
//! level (a value within 1e-5 of a rounding boundary may round either way). The R50 teacher's
//! synthetic logits reach 1e7 (its decoder multiplies maps that the synthetic weights leave
//! unnormalised), so in f32 its logits are compared relative to their largest value: 1e-3 (measured 1.5e-4:
//! f32 rounding of 50 layers, amplified by the decoder's products; the f64 check shows the fold
//! itself is exact).

use candle_core::{DType, Device, Tensor};
use scfnet_backbones::{synthetic_image, synthetic_var_builder};
use scfnet_model::{predict_maps, InputSide, ModelKind, RgbRef, Scfnet};

fn probabilities(net: &Scfnet, x: &Tensor) -> Vec<f32> {
    let p2 = net.side_outputs(x, false).unwrap().p2;
    candle_nn::ops::sigmoid(&p2)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// The largest absolute value of `t`, in f64.
fn max_abs(t: &Tensor) -> f64 {
    let m = t.abs().unwrap().max_all().unwrap();
    m.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

/// A network with synthetic weights whose running statistics are calibrated on `x` (training-mode
/// passes, momentum 0.1), so that activations are normalised as in a trained network instead of
/// growing layer after layer.
fn calibrated(kind: ModelKind, dtype: DType, x: &Tensor) -> Scfnet {
    let (vb, _) = synthetic_var_builder(dtype, &Device::Cpu);
    let net = Scfnet::new(kind, vb).unwrap();
    for _ in 0..30 {
        net.side_outputs(x, true).unwrap();
    }
    net
}

fn check(kind: ModelKind, side: usize) {
    let x = synthetic_image(
        &format!("input:1x3x{side}x{side}"),
        &[1, 3, side, side],
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let net = calibrated(kind, DType::F32, &x);
    let folded = net.folded().unwrap();
    if kind == ModelKind::R50 {
        let a = net.side_outputs(&x, false).unwrap().p2;
        let b = folded.side_outputs(&x, false).unwrap().p2;
        let (scale, diff) = (max_abs(&a), max_abs(&(a - b).unwrap()));
        eprintln!("{kind} at {side}: logits |Δ| {diff:.2e} of {scale:.2e}");
        assert!(diff <= 1e-3 * scale, "{kind}: {diff:e} of {scale:e}");
        return;
    }
    let (a, b) = (probabilities(&net, &x), probabilities(&folded, &x));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max);
    // The maps must not be flat, or the comparison says nothing.
    let spread = a.iter().cloned().fold(f32::MIN, f32::max) - a.iter().cloned().fold(1.0, f32::min);
    assert!(spread > 0.05, "{kind}: flat map (spread {spread})");
    assert!(worst <= 1e-5, "{kind}: folded differs by {worst:e}");

    // 8-bit maps of a 300×200 image.
    let (w, h) = (300, 200);
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
    let image = RgbRef {
        pixels: &pixels,
        width: w,
        height: h,
    };
    let dev = Device::Cpu;
    let side = InputSide::new(side).unwrap();
    let m1 = predict_maps(&net, side, &dev, DType::F32, &[image]).unwrap();
    let m2 = predict_maps(&folded, side, &dev, DType::F32, &[image]).unwrap();
    let differing = m1[0].iter().zip(&m2[0]).filter(|(p, q)| p != q).count();
    let largest = m1[0]
        .iter()
        .zip(&m2[0])
        .map(|(p, q)| p.abs_diff(*q))
        .max()
        .unwrap();
    eprintln!(
        "{kind} at {side}: max |Δp| {worst:.2e}; 8-bit maps differ at {differing} of {} pixels",
        w * h
    );
    assert!(
        largest <= 1,
        "{kind}: 8-bit maps differ by {largest} levels"
    );
}

#[test]
fn the_folded_student_matches_the_training_graph() {
    check(ModelKind::Student, 352);
}

#[test]
fn the_folded_resnet50_teacher_matches_the_training_graph() {
    check(ModelKind::R50, 128);
}

/// In f64 the folding is exact up to rounding: all four side outputs agree to 1e-10 relative to
/// their largest value (a wrong fold would be off by far more).
fn check_f64(kind: ModelKind, side: usize) {
    let dims = [1, 3, side, side];
    let x = synthetic_image("input:f64", &dims, DType::F64, &Device::Cpu).unwrap();
    let net = calibrated(kind, DType::F64, &x);
    let a = net.side_outputs(&x, false).unwrap();
    let b = net.folded().unwrap().side_outputs(&x, false).unwrap();
    for (i, (p, q)) in a.as_array().into_iter().zip(b.as_array()).enumerate() {
        let (scale, diff) = (max_abs(p), max_abs(&(p - q).unwrap()));
        eprintln!("{kind} f64 p{}: |Δ| {diff:.2e} of {scale:.2e}", i + 2);
        assert!(
            diff <= 1e-10 * scale,
            "{kind} p{}: {diff:e} of {scale:e}",
            i + 2
        );
    }
}

#[test]
fn folding_is_exact_in_f64() {
    check_f64(ModelKind::Student, 96);
    check_f64(ModelKind::R50, 64);
}

/// In eval mode on the CPU a batch is cut into one part per worker thread: the prediction of a
/// batch of five different images on three workers equals each image's own prediction, in order.
#[test]
fn a_batch_split_between_workers_gives_each_image_its_own_map() {
    use candle_nn::ModuleT;
    let dims = [5, 3, 96, 96];
    let x = synthetic_image("input:5 images", &dims, DType::F32, &Device::Cpu).unwrap();
    let net = calibrated(ModelKind::Student, DType::F32, &x)
        .folded()
        .unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let batch = pool.install(|| net.forward_t(&x, false)).unwrap();
    assert_eq!(batch.dims(), &[5, 1, 96, 96]);
    let mut images_differ = false;
    for i in 0..5 {
        let one = x.narrow(0, i, 1).unwrap();
        let alone = pool.install(|| net.forward_t(&one, false)).unwrap();
        let diff = max_abs(&(batch.narrow(0, i, 1).unwrap() - &alone).unwrap());
        assert!(diff <= 1e-6 * max_abs(&alone), "image {i}: |Δ| {diff:e}");
        if i > 0 {
            let previous = batch.narrow(0, i - 1, 1).unwrap();
            images_differ |= max_abs(&(previous - &alone).unwrap()) > 1e-3;
        }
    }
    assert!(images_differ, "the five images give the same map");
}

/// A single image gives the same map with and without the busy-waiting helper worker (only the
/// scheduling differs).
#[test]
fn a_single_image_gives_the_same_map_without_the_busy_helper() {
    use candle_nn::ModuleT;
    let x = synthetic_image("input:helper", &[1, 3, 96, 96], DType::F32, &Device::Cpu).unwrap();
    let net = calibrated(ModelKind::Student, DType::F32, &x)
        .folded()
        .unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let with = pool.install(|| net.forward_t(&x, false)).unwrap();
    let without = pool
        .install(|| scfnet_infer::schedule::run_eval(&x, false, &|| false, &|x| net.p2(x, false)))
        .unwrap();
    assert_eq!(max_abs(&(with - &without).unwrap()), 0.0);
    assert!(max_abs(&without) > 0.0);
}
