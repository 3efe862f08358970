//! One model definition, two backends: the same weights, loaded from one
//! record, give the same logits on ndarray (CPU) and wgpu (here Mesa's
//! lavapipe Vulkan driver on the CPU; on a machine with a GPU, the GPU).

use burn::backend::wgpu::WgpuDevice;
use burn::backend::{NdArray, Wgpu};
use burn::prelude::*;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tolerance;
use model::{
    AlignmentKind, CellKind, Pooling, TextClassifierConfig, TransformerTranslatorConfig,
    TranslatorConfig,
};

/// Whether wgpu finds an adapter. Without one the test fails, saying what
/// to install — unless `BURN_SEQ_WGPU=skip` (set by `cargo xtask test` only
/// where no driver could be installed, never under CI), where it says it
/// skipped.
fn wgpu_available() -> bool {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        Tensor::<Wgpu, 1>::zeros([1], &WgpuDevice::default()).into_data()
    });
    std::panic::set_hook(hook);
    if probe.is_ok() {
        return true;
    }
    let advice = "wgpu found no adapter (no GPU driver, and no Mesa lavapipe Vulkan driver): install mesa-vulkan-drivers, or run `cargo xtask test`, which installs it";
    if std::env::var("BURN_SEQ_WGPU").as_deref() == Ok("skip") {
        eprintln!("SKIPPED: {advice}");
        false
    } else {
        panic!("{advice}");
    }
}

/// One set of weights on both backends: `init` builds a model on a device,
/// and both models are loaded from one serialized record of a third.
/// (Parameters are initialized lazily, so a clone of a fresh module would
/// draw its own weights.)
fn on_both<CB, GB, C, G>(init_cpu: impl Fn() -> C, init_gpu: impl Fn() -> G) -> (C, G)
where
    CB: Backend<Device = burn::backend::ndarray::NdArrayDevice>,
    GB: Backend<Device = WgpuDevice>,
    C: burn::module::Module<CB>,
    G: burn::module::Module<GB>,
{
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder.record(init_cpu().into_record(), ()).unwrap();
    let cpu = init_cpu().load_record(recorder.load(bytes.clone(), &Default::default()).unwrap());
    let gpu = init_gpu().load_record(recorder.load(bytes, &WgpuDevice::default()).unwrap());
    (cpu, gpu)
}

/// The classifier with its LSTM encoder and with a Transformer, each with
/// attention pooling and with concat pooling (`train`'s default).
#[test]
fn ndarray_and_wgpu_give_the_same_logits_from_one_record() {
    if !wgpu_available() {
        return;
    }
    let (cpu, gpu) = (Default::default(), WgpuDevice::default());
    let cases = [CellKind::Lstm, CellKind::Transformer]
        .into_iter()
        .flat_map(|cell| [Pooling::Attention, Pooling::Concat].map(|pooling| (cell, pooling)));
    for (cell, pooling) in cases {
        let config = TextClassifierConfig::new(300, 2)
            .with_d_embed(32)
            .with_d_hidden(24)
            .with_cell(cell)
            .with_pooling(Some(pooling));
        let (cpu_model, gpu_model) = on_both(
            || config.init::<NdArray>(&cpu),
            || config.init::<Wgpu>(&gpu),
        );

        let ids = [
            [12, 45, 7, 299, 3, 18, 0, 0],
            [5, 6, 7, 8, 9, 10, 11, 12],
            [250, 0, 0, 0, 0, 0, 0, 0],
        ];
        let cpu_tokens = Tensor::<NdArray, 2, Int>::from_ints(ids, &cpu);
        let gpu_tokens = Tensor::<Wgpu, 2, Int>::from_ints(ids, &gpu);
        let cpu_out = cpu_model.forward(cpu_tokens.clone(), cpu_tokens.not_equal_elem(0));
        let gpu_out = gpu_model.forward(gpu_tokens.clone(), gpu_tokens.not_equal_elem(0));

        let cpu_logits = cpu_out.logits.into_data();
        let gpu_logits = gpu_out.logits.into_data();
        let maxdiff = max_abs_diff(&cpu_logits, &gpu_logits);
        println!("{cell}, {pooling} pooling: logits OK, maxdiff = {maxdiff:e}");
        cpu_logits.assert_approx_eq::<f32>(&gpu_logits, Tolerance::absolute(1e-4));
        cpu_out
            .attention
            .into_data()
            .assert_approx_eq::<f32>(&gpu_out.attention.into_data(), Tolerance::absolute(1e-4));
    }
}

/// Every parameter's gradient, flattened, in the module's order.
struct Gradients<'a, B: burn::tensor::backend::AutodiffBackend> {
    grads: &'a B::Gradients,
    values: Vec<Vec<f32>>,
}

impl<B: burn::tensor::backend::AutodiffBackend> burn::module::ModuleVisitor<B>
    for Gradients<'_, B>
{
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
        let grad = param
            .grad(self.grads)
            .expect("every parameter gets a gradient");
        self.values.push(grad.into_data().to_vec().unwrap());
    }
}

/// One backward pass through the classifier with concat pooling (`train`'s
/// default) gives the same gradient for every parameter on both backends:
/// max pooling's gradient reaches the winning steps on wgpu as on ndarray.
#[test]
fn concat_pooling_gradients_agree_on_both_backends() {
    use burn::backend::Autodiff;
    if !wgpu_available() {
        return;
    }
    let (cpu, gpu) = (Default::default(), WgpuDevice::default());
    let config = TextClassifierConfig::new(60, 2)
        .with_d_embed(8)
        .with_d_hidden(6)
        .with_embedding_dropout(0.0)
        .with_output_dropout(0.0)
        .with_pooling(Some(Pooling::Concat));
    let (cpu_model, gpu_model) = on_both(
        || config.init::<Autodiff<NdArray>>(&cpu),
        || config.init::<Autodiff<Wgpu>>(&gpu),
    );

    let ids = [[12, 45, 7, 59, 3, 0], [5, 6, 7, 8, 9, 10]];
    fn gradients<B: burn::tensor::backend::AutodiffBackend + model::LstmBackend>(
        model: &model::TextClassifier<B>,
        ids: [[i32; 6]; 2],
        device: &B::Device,
    ) -> Vec<Vec<f32>> {
        let tokens = Tensor::<B, 2, Int>::from_ints(ids, device);
        let logits = model
            .forward(tokens.clone(), tokens.not_equal_elem(0))
            .logits; // [2, 2]
        let weights = Tensor::<B, 2>::from_floats([[1.0, -2.0], [0.5, 3.0]], device);
        let grads = (logits * weights).sum().backward();
        let mut visitor = Gradients::<B> {
            grads: &grads,
            values: Vec::new(),
        };
        model.visit(&mut visitor);
        visitor.values
    }
    let on_cpu = gradients(&cpu_model, ids, &cpu);
    let on_gpu = gradients(&gpu_model, ids, &gpu);
    assert_eq!(on_cpu.len(), on_gpu.len());
    for (i, (a, b)) in on_cpu.iter().zip(&on_gpu).enumerate() {
        assert_eq!(a.len(), b.len());
        // The attention score's bias (one number) shifts every step's score
        // alike, which softmax ignores: its gradient is zero up to rounding.
        if a.len() > 1 {
            let largest = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            assert!(largest > 0.0, "parameter {i}: a zero gradient");
        }
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() < 1e-4,
                "parameter {i}: {x} on ndarray, {y} on wgpu"
            );
        }
    }
}

/// The translator's encoder and decoder steps, with each kind of attention:
/// the same record gives the same logits and attention weights on both.
#[test]
fn ndarray_and_wgpu_give_the_same_decoder_steps() {
    if !wgpu_available() {
        return;
    }
    let (cpu, gpu) = (Default::default(), WgpuDevice::default());
    for kind in [
        Some(AlignmentKind::Bahdanau),
        Some(AlignmentKind::General),
        None,
    ] {
        let config = TranslatorConfig::new(40, 30)
            .with_d_embed(12)
            .with_d_hidden(10)
            .with_attention(kind);
        let (cpu_model, gpu_model) = on_both(
            || config.init::<NdArray>(&cpu),
            || config.init::<Wgpu>(&gpu),
        );
        let source = [[5, 9, 13, 2, 0], [7, 3, 0, 0, 0]];
        let target = [[1, 4, 8], [1, 6, 0]];
        let cpu_source = Tensor::<NdArray, 2, Int>::from_ints(source, &cpu);
        let gpu_source = Tensor::<Wgpu, 2, Int>::from_ints(source, &gpu);
        let cpu_out = cpu_model.forward(
            cpu_source.clone(),
            cpu_source.not_equal_elem(0),
            Tensor::from_ints(target, &cpu),
        );
        let gpu_out = gpu_model.forward(
            gpu_source.clone(),
            gpu_source.not_equal_elem(0),
            Tensor::from_ints(target, &gpu),
        );
        let (cpu_logits, gpu_logits) = (cpu_out.logits.into_data(), gpu_out.logits.into_data());
        println!(
            "{kind:?}: decoder logits maxdiff = {:e}",
            max_abs_diff(&cpu_logits, &gpu_logits)
        );
        cpu_logits.assert_approx_eq::<f32>(&gpu_logits, Tolerance::absolute(1e-4));
        cpu_out
            .attention
            .into_data()
            .assert_approx_eq::<f32>(&gpu_out.attention.into_data(), Tolerance::absolute(1e-4));
    }
}

/// The Transformer translator (Burn's own layers, our masks and positions)
/// under teacher forcing.
#[test]
fn the_transformer_translator_agrees_on_both_backends() {
    if !wgpu_available() {
        return;
    }
    let (cpu, gpu) = (Default::default(), WgpuDevice::default());
    let config = TransformerTranslatorConfig::new(40, 30)
        .with_d_model(16)
        .with_d_ff(32)
        .with_n_heads(2)
        .with_n_layers(2);
    let (cpu_model, gpu_model) = on_both(
        || config.init::<NdArray>(&cpu),
        || config.init::<Wgpu>(&gpu),
    );
    let source = [[5, 9, 13, 2, 0], [7, 3, 0, 0, 0]];
    let target = [[2, 4, 8], [2, 6, 0]];
    let cpu_source = Tensor::<NdArray, 2, Int>::from_ints(source, &cpu);
    let gpu_source = Tensor::<Wgpu, 2, Int>::from_ints(source, &gpu);
    let cpu_logits = cpu_model
        .forward(
            cpu_source.clone(),
            cpu_source.not_equal_elem(0),
            Tensor::from_ints(target, &cpu),
        )
        .into_data();
    let gpu_logits = gpu_model
        .forward(
            gpu_source.clone(),
            gpu_source.not_equal_elem(0),
            Tensor::from_ints(target, &gpu),
        )
        .into_data();
    println!(
        "transformer: logits maxdiff = {:e}",
        max_abs_diff(&cpu_logits, &gpu_logits)
    );
    cpu_logits.assert_approx_eq::<f32>(&gpu_logits, Tolerance::absolute(1e-4));
}

fn max_abs_diff(a: &TensorData, b: &TensorData) -> f32 {
    let a = a.to_vec::<f32>().unwrap();
    let b = b.to_vec::<f32>().unwrap();
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
