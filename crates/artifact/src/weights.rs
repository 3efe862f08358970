//! `model.mpk`: loading weights into a model built from the config, with a
//! check of every parameter's shape.

use crate::files::{CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_STEM};
use anyhow::{Context, Result, bail};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use std::path::Path;

/// The recorder of the weights: named fields, so a mismatch says which one.
pub type WeightsRecorder = NamedMpkFileRecorder<FullPrecisionSettings>;

/// Checks, before a model of `params` parameters is built from the config
/// in `dir`, that the weights file could hold that many (at least a byte
/// each: int8) and that this machine could: a corrupted or hostile config
/// with a huge size is refused here instead of hanging the allocator.
pub fn check_params_fit(dir: &Path, params: f64) -> Result<()> {
    let path = dir.join(WEIGHTS_FILE);
    let config = dir.join(CONFIG_FILE);
    let bytes = std::fs::metadata(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if params > bytes as f64 {
        bail!(
            "{}: its sizes make a model of {params:.3e} parameters, more than {} ({bytes} bytes) can hold: the config does not describe these weights",
            config.display(),
            path.display()
        );
    }
    crate::memory::check_fits(params, false, &format!("the model of {}", config.display()))
}

/// Loads weights into a model built from `config`, and checks that every
/// parameter has the shape the config implies.
pub fn load_weights<B: Backend, M: Module<B>>(
    dir: &Path,
    fresh: M,
    device: &B::Device,
) -> Result<M> {
    let path = dir.join(WEIGHTS_FILE);
    let expected = ParamShapes::of(&fresh, false);
    // Burn's record loading panics, rather than erroring, when the weights
    // hold a different variant of an enum module (an LSTM's weights under a
    // GRU config): turn that into an error too, without the panic message.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fresh.load_file(dir.join(WEIGHTS_STEM), &WeightsRecorder::new(), device)
    }));
    std::panic::set_hook(hook);
    let loaded = match attempt {
        Ok(loaded) => {
            loaded.with_context(|| format!("cannot load weights from {}", path.display()))?
        }
        Err(payload) => {
            let reason = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            bail!(
                "{} does not match {}: the weights are of a different model ({reason})",
                path.display(),
                dir.join(CONFIG_FILE).display()
            );
        }
    };
    let found = ParamShapes::of(&loaded, true);
    // Burn loads an optional or repeated submodule by zipping it with the
    // record: a module the weights lack is dropped without a word (a
    // Transformer config over an LSTM's weights loses its layers).
    let names = |shapes: &ParamShapes| {
        shapes
            .shapes
            .iter()
            .map(|s| s.0.clone())
            .collect::<Vec<_>>()
    };
    if names(&expected) != names(&found) {
        let (want, got) = (names(&expected), names(&found));
        let difference = match want.iter().find(|n| !got.contains(n)) {
            Some(name) => format!("the config's parameter `{name}` is not in them"),
            None => format!(
                "{} parameters where the config has {}",
                got.len(),
                want.len()
            ),
        };
        bail!(
            "{} does not match {}: the weights are of a different model ({difference})",
            path.display(),
            dir.join(CONFIG_FILE).display()
        );
    }
    for ((name, want), (_, got)) in expected.shapes.iter().zip(&found.shapes) {
        if want != got {
            bail!(
                "{} does not match {}: parameter `{name}` has shape {got:?} in the weights but {want:?} in the config",
                path.display(),
                dir.join(CONFIG_FILE).display()
            );
        }
    }
    if let Some(name) = found.non_finite {
        bail!(
            "{}: parameter `{name}` holds a NaN or an infinity: these weights cannot give an answer",
            path.display()
        );
    }
    check_quantized_backend(found.quantized, &B::name(device), &path)?;
    Ok(loaded)
}

/// int8 weights (from `train compress quantize`) run correctly on ndarray
/// only: with Burn 0.21, an int8 record made on ndarray loads on wgpu but
/// gives other logits (measured: 0.17 apart on a test model), and quantizing
/// on wgpu itself fails. So a quantized artifact on another backend is an
/// error rather than silently wrong predictions.
pub fn check_quantized_backend(quantized: bool, backend: &str, weights: &Path) -> Result<()> {
    if quantized && !backend.to_lowercase().contains("ndarray") {
        bail!(
            "{} holds int8 weights, which Burn 0.21 runs correctly on the ndarray backend only, not on {backend}: use the default (ndarray) build",
            weights.display()
        );
    }
    Ok(())
}

/// Whether any of `module`'s parameters is int8 (`train compress quantize`).
pub fn is_quantized<B: Backend, M: Module<B>>(module: &M) -> bool {
    ParamShapes::of(module, false).quantized
}

/// The dotted path and shape of every float parameter, in visiting order,
/// and whether any of them is quantized.
struct ParamShapes {
    shapes: Vec<(String, Vec<usize>)>,
    quantized: bool,
    /// The first parameter holding a NaN or an infinity.
    non_finite: Option<String>,
}

impl ParamShapes {
    /// With `check_finite`, also finds the first parameter that is not
    /// finite (a read of every weight: for loaded weights, not fresh ones).
    fn of<B: Backend, M: Module<B>>(module: &M, check_finite: bool) -> Self {
        let mut visitor = ShapeVisitor {
            path: Vec::new(),
            check_finite,
            shapes: ParamShapes {
                shapes: Vec::new(),
                quantized: false,
                non_finite: None,
            },
        };
        module.visit(&mut visitor);
        visitor.shapes
    }
}

struct ShapeVisitor {
    path: Vec<String>,
    check_finite: bool,
    shapes: ParamShapes,
}

impl<B: Backend> ModuleVisitor<B> for ShapeVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        let quantized = matches!(value.dtype(), burn::tensor::DType::QFloat(_));
        self.shapes.quantized |= quantized;
        // int8 codes are finite, but their scales are floats: the values
        // they stand for are checked.
        if self.check_finite && self.shapes.non_finite.is_none() {
            let finite: bool = value
                .clone()
                .dequantize()
                .is_finite()
                .all()
                .into_scalar()
                .elem();
            if !finite {
                self.shapes.non_finite = Some(self.path.join("."));
            }
        }
        self.shapes
            .shapes
            .push((self.path.join("."), value.dims().to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::module::Quantizer;
    use burn::tensor::ops::QuantizedTensor;
    use burn::tensor::quantization::{Calibration, QTensorPrimitive, QuantParam, QuantValue};
    use model::TextClassifierConfig;

    #[test]
    fn int8_weights_are_refused_off_ndarray() {
        let weights = Path::new("artifacts/mr-int8/model.mpk");
        assert!(check_quantized_backend(true, "ndarray", weights).is_ok());
        assert!(check_quantized_backend(false, "fusion<cubecl<wgpu>>", weights).is_ok());
        let err = check_quantized_backend(true, "fusion<cubecl<wgpu>>", weights)
            .unwrap_err()
            .to_string();
        assert!(err.contains("artifacts/mr-int8/model.mpk"), "{err}");
        assert!(err.contains("ndarray"), "{err}");
        assert_eq!(NdArray::<f32>::name(&Default::default()), "ndarray");

        let device = Default::default();
        let model = TextClassifierConfig::new(10, 2).init::<NdArray>(&device);
        assert!(!ParamShapes::of(&model, false).quantized);
        let scheme = <QuantizedTensor<NdArray> as QTensorPrimitive>::default_scheme()
            .with_value(QuantValue::Q8S)
            .with_param(QuantParam::F32);
        let quantized = model.quantize_weights(&mut Quantizer {
            calibration: Calibration::MinMax,
            scheme,
        });
        assert!(ParamShapes::of(&quantized, false).quantized);
    }
}
