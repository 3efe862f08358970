//! `train compress quantize`: post-training int8 weight quantization with
//! Burn's `Quantizer` (symmetric, min–max calibrated), one scale per tensor
//! or per block. The artifact's weights file stores the int8 values and
//! their scales. Burn would dequantize them on every read; a classifier with
//! an LSTM encoder instead predicts through the int8 kernels
//! (`model::Int8Classifier`, per-column scales taken from these values),
//! and its accuracy here is measured through them.

use super::{Source, SourceAndTarget, compression};
use crate::TrainBackend;
use crate::classifier::evaluate_and_write;
use crate::fit::RunInfo;
use anyhow::{Result, bail};
use artifact::{ArtifactWriter, Classifier, CompressionSettings, Granularity};
use burn::module::{Module, ModuleMapper, Param, Quantizer};
use burn::prelude::*;
use burn::tensor::ops::QuantizedTensor;
use burn::tensor::quantization::{
    BlockSize, Calibration, QTensorPrimitive, QuantLevel, QuantParam, QuantScheme, QuantValue,
};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct QuantizeArgs {
    #[command(flatten)]
    pub paths: SourceAndTarget,
    /// One scale per tensor, or one per block of --block-size values.
    #[arg(long, value_enum, default_value_t = Granularity::Tensor)]
    pub granularity: Granularity,
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u8).range(1..))]
    pub block_size: u8,
}

pub fn run<B: TrainBackend>(args: &QuantizeArgs, device: &B::Device, backend: &str) -> Result<()> {
    let name = B::InnerBackend::name(device);
    if !name.contains("ndarray") {
        bail!(
            "int8 quantization runs on the ndarray backend only (Burn 0.21 on {name} gives wrong results or fails): run `train compress quantize` from the default build"
        );
    }
    let source = Source::<B::InnerBackend>::load(&args.paths, None, device)?;
    let scheme = <QuantizedTensor<B::InnerBackend> as QTensorPrimitive>::default_scheme()
        .with_value(QuantValue::Q8S)
        .with_level(QuantLevel::Tensor)
        .with_param(QuantParam::F32);
    let block = (args.granularity == Granularity::Block).then_some(args.block_size);
    let mut quantizer = Int8 {
        scheme,
        block,
        blocked: 0,
        whole: 0,
    };
    let (model, tokenizer, config) = source.classifier.into_parts();
    let model = model.map(&mut quantizer);
    println!(
        "quantized every parameter tensor to int8: {} with a scale per block of {}, {} with one scale per tensor ({scheme:?})",
        quantizer.blocked, args.block_size, quantizer.whole
    );
    let settings = CompressionSettings::Quantize {
        granularity: args.granularity,
        block_size: args.block_size,
        blocked_tensors: quantizer.blocked,
        whole_tensors: quantizer.whole,
    };
    let compression = compression("quantize", &args.paths.from, &model, settings);
    let quantized = Classifier::new(model, tokenizer, config, device);
    if quantized.runs_int8() {
        println!(
            "predictions run through the int8 kernels (int8 products with a scale per output column, activations quantized per row)"
        );
    } else {
        println!(
            "this encoder has no int8 kernels (LSTM only): Burn dequantizes the weights on every read, so the artifact is smaller, not faster"
        );
    }
    let writer = ArtifactWriter::create(
        &args.paths.artifact_dir,
        "classifier",
        &[&args.paths.from, &args.paths.data_dir],
    )?;
    evaluate_and_write(
        writer,
        quantized,
        &source.splits,
        RunInfo::of(&source.metrics),
        backend,
        Some(compression),
    )?;
    Ok(())
}

/// Burn's `Quantizer` (min–max calibration) with the level chosen per
/// tensor: blocks of `block` values along the last dimension where that
/// dimension is a multiple of the block (Burn cannot block it otherwise),
/// one scale for the whole tensor elsewhere and when `block` is `None`.
struct Int8 {
    scheme: QuantScheme,
    block: Option<u8>,
    blocked: usize,
    whole: usize,
}

impl<B: Backend> ModuleMapper<B> for Int8 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let last = param.val().dims()[D - 1];
        let scheme = match self.block {
            Some(block) if last % block as usize == 0 => {
                self.blocked += 1;
                self.scheme
                    .with_level(QuantLevel::Block(BlockSize::new([block])))
            }
            _ => {
                self.whole += 1;
                self.scheme.with_level(QuantLevel::Tensor)
            }
        };
        Quantizer {
            calibration: Calibration::MinMax,
            scheme,
        }
        .map_float(param)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::test_batch as batch;
    use burn::backend::NdArray;
    use model::TextClassifierConfig;

    /// int8 quantization, per tensor or per block, moves no logit of a fixed
    /// batch by more than 0.05 (the logits themselves are of order 1; one
    /// int8 step of a weight tensor is 1/127 of its largest magnitude).
    #[test]
    fn quantized_logits_stay_close_to_the_float_ones() {
        let device = Default::default();
        <NdArray as Backend>::seed(&device, 3);
        let model = TextClassifierConfig::new(64, 2).init::<NdArray>(&device);
        let (tokens, mask) = batch::<NdArray>(&device);
        let float = model.forward(tokens.clone(), mask.clone()).logits;
        let scheme = <QuantizedTensor<NdArray> as QTensorPrimitive>::default_scheme()
            .with_value(QuantValue::Q8S)
            .with_param(QuantParam::F32);
        // Per tensor, and per block of 32: the embedding, the LSTM's W, U
        // and bias are blocked; the attention's [128, 1] scoring weight, the
        // [128, 2] output weight and their biases keep one scale each.
        for (block, blocked) in [(None, 0), (Some(32), 4)] {
            let mut int8 = Int8 {
                scheme,
                block,
                blocked: 0,
                whole: 0,
            };
            let quantized = model.clone().map(&mut int8);
            assert_eq!(int8.blocked, blocked, "{block:?}");
            let q = quantized.forward(tokens.clone(), mask.clone()).logits;
            let scale: f32 = float.clone().abs().max().into_scalar();
            let diff: f32 = (q - float.clone()).abs().max().into_scalar();
            println!("block {block:?}: largest logit {scale}, largest change {diff}");
            assert!(scale > 0.05, "the logits should not be trivially small");
            assert!(diff < 0.05, "quantization moved a logit by {diff}");
            assert!(diff > 0.0, "the weights should actually have changed");
        }
    }
}
