//! Weights in PyTorch's names and layouts, as a safetensors file: what
//! `infer export` writes and `train import` reads.
//!
//! The classifier maps onto the `nn.Module` of the team's PyTorch reference
//! (`../shared/bench/pytorch_reference.py`, `AttnLstmClassifier`) and the
//! language model onto `pytorch_char_lm.py`'s `CharLm`:
//!
//! | ours (Burn path)                          | PyTorch                       |
//! |-------------------------------------------|-------------------------------|
//! | `embedding.weight` `[V, E]`               | `embedding.weight` `[V, E]`   |
//! | `encoder.layers.k.forward.input.weight` `[E, 4H]` (`layers.k.input.weight` in the LM) | `lstm.weight_ih_lk` `[4H, E]` |
//! | `….recurrent.weight` `[H, 4H]`            | `lstm.weight_hh_lk` `[4H, H]` |
//! | `….input.bias` `[4H]`                     | `lstm.bias_ih_lk` + `lstm.bias_hh_lk` |
//! | `….backward.…` (bidirectional)            | `lstm.…_lk_reverse`           |
//! | `attention.score.weight` `[D, 1]`, `.bias`| `score.weight` `[1, D]`, `score.bias` |
//! | `output.weight` `[D, C]`, `.bias`         | `out.weight` `[C, D]`, `out.bias` |
//!
//! Burn's `Linear` keeps its weight as `[in, out]` and PyTorch's as
//! `[out, in]`, so every matrix but the embedding is transposed. Both
//! order the LSTM's gates i, f, g, o. Our LSTM has one bias per gate where
//! PyTorch has two that are always added: export writes ours as `bias_ih`
//! and zeros as `bias_hh`; import adds them. The traversal of the module is
//! burn-store's (`collect`, `apply`); the file is the `safetensors` crate's.

use anyhow::{Context, Result, bail, ensure};
use burn::module::ParamId;
use burn::prelude::*;
use burn::tensor::DType;
use burn_store::{ModuleSnapshot, TensorSnapshot};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The safetensors metadata key that says this project wrote the file.
pub const FORMAT_KEY: &str = "format";
pub const FORMAT: &str = "burn-seq/pytorch-v1";

/// One tensor under its PyTorch name, row-major.
struct Named {
    name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// Where one of our parameters goes in PyTorch's module.
#[derive(Debug, PartialEq)]
struct Mapping {
    name: String,
    /// A `Linear`'s weight: `[in, out]` here, `[out, in]` there.
    transposed: bool,
    /// The LSTM's one bias, which PyTorch splits into `bias_ih` + `bias_hh`
    /// (this is the name of the `bias_hh` half).
    split_bias: Option<String>,
}

/// PyTorch's name for our parameter at `path`, or `None` when the module
/// has no counterpart there (an RNN or GRU encoder: their linears have the
/// LSTM's field names, so `in_lstm` says whether the parameter is an LSTM's).
fn mapping(path: &str, in_lstm: bool) -> Option<Mapping> {
    let plain = |name: &str, transposed| Mapping {
        name: name.to_string(),
        transposed,
        split_bias: None,
    };
    let parts: Vec<&str> = path.split('.').collect();
    match parts.as_slice() {
        ["embedding", "weight"] => Some(plain("embedding.weight", false)),
        ["attention", "score", "weight"] => Some(plain("score.weight", true)),
        ["attention", "score", "bias"] => Some(plain("score.bias", false)),
        ["output", "weight"] => Some(plain("out.weight", true)),
        ["output", "bias"] => Some(plain("out.bias", false)),
        _ if in_lstm => lstm_path(&parts),
        _ => None,
    }
}

/// The LSTM parameters: the classifier's encoder and the language model's stack.
fn lstm_path(parts: &[&str]) -> Option<Mapping> {
    match parts {
        ["encoder", "layers", k, direction, linear, tensor] => {
            let suffix = match *direction {
                "forward" => "",
                "backward" => "_reverse",
                _ => return None,
            };
            lstm_mapping(k, suffix, linear, tensor)
        }
        ["layers", k, linear, tensor] => lstm_mapping(k, "", linear, tensor),
        _ => None,
    }
}

fn lstm_mapping(layer: &str, suffix: &str, linear: &str, tensor: &str) -> Option<Mapping> {
    layer.parse::<usize>().ok()?;
    let name = |what: &str| format!("lstm.{what}_l{layer}{suffix}");
    match (linear, tensor) {
        ("input", "weight") => Some(Mapping {
            name: name("weight_ih"),
            transposed: true,
            split_bias: None,
        }),
        ("recurrent", "weight") => Some(Mapping {
            name: name("weight_hh"),
            transposed: true,
            split_bias: None,
        }),
        ("input", "bias") => Some(Mapping {
            name: name("bias_ih"),
            transposed: false,
            split_bias: Some(name("bias_hh")),
        }),
        _ => None,
    }
}

/// Whether burn-store's snapshot is a parameter of our `Lstm` module.
fn in_lstm(snapshot: &TensorSnapshot) -> bool {
    snapshot
        .container_stack
        .iter()
        .flatten()
        .any(|container| container == "Struct:Lstm")
}

/// `[rows, cols]` row-major into `[cols, rows]`.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Writes `model`'s weights to `path` in PyTorch's names and layouts.
/// `kind` and `config` (the artifact's config.json) go into the file's
/// metadata. An existing file is replaced only if this project wrote it.
pub fn export<B: Backend, M: Module<B>>(
    model: &M,
    kind: &str,
    config: &serde_json::Value,
    path: &Path,
) -> Result<Vec<String>> {
    check_replaceable(path)?;
    let mut tensors = Vec::new();
    for snapshot in model.collect(None, None, true) {
        let ours = snapshot.full_path();
        let Some(to) = mapping(&ours, in_lstm(&snapshot)) else {
            bail!(
                "parameter `{ours}` has no counterpart in PyTorch's module: export takes LSTM models (the --encoder lstm or bilstm classifier, the language model)"
            );
        };
        if matches!(snapshot.dtype, DType::QFloat(_)) {
            bail!(
                "`{ours}` is int8 (a `train compress quantize` artifact): export the float artifact it was made from"
            );
        }
        let data = snapshot
            .to_data()
            .map_err(|e| anyhow::anyhow!("reading `{ours}`: {e:?}"))?;
        let shape: Vec<usize> = data.shape.to_vec();
        let values: Vec<f32> = data
            .convert::<f32>()
            .to_vec()
            .map_err(|e| anyhow::anyhow!("reading `{ours}`: {e:?}"))?;
        let (shape, values) = if to.transposed {
            (
                vec![shape[1], shape[0]],
                transpose(&values, shape[0], shape[1]),
            )
        } else {
            (shape, values)
        };
        if let Some(hh) = to.split_bias {
            tensors.push(Named {
                name: hh,
                shape: shape.clone(),
                values: vec![0.0; values.len()],
            });
        }
        tensors.push(Named {
            name: to.name,
            shape,
            values,
        });
    }
    let names = tensors.iter().map(|t| t.name.clone()).collect();
    write(&tensors, kind, config, path)?;
    Ok(names)
}

/// Refuses to replace a file this project did not write.
fn check_replaceable(path: &Path) -> Result<()> {
    if path.is_dir() {
        bail!(
            "--to {} is a directory: give a file name (model.safetensors)",
            path.display()
        );
    }
    if !path.exists() {
        return Ok(());
    }
    let ours = std::fs::read(path)
        .ok()
        .and_then(|bytes| {
            let (_, metadata) = SafeTensors::read_metadata(&bytes).ok()?;
            Some(metadata.metadata().as_ref()?.get(FORMAT_KEY)? == FORMAT)
        })
        .unwrap_or(false);
    ensure!(
        ours,
        "--to {} exists and was not written by `infer export`: choose another path or remove it",
        path.display()
    );
    Ok(())
}

fn write(tensors: &[Named], kind: &str, config: &serde_json::Value, path: &Path) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            let view = TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map_err(|e| anyhow::anyhow!("{}: {e}", t.name))?;
            Ok((t.name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([
        (FORMAT_KEY.to_string(), FORMAT.to_string()),
        ("kind".to_string(), kind.to_string()),
        ("config".to_string(), config.to_string()),
    ]);
    let file = safetensors::serialize(views, Some(metadata))
        .map_err(|e| anyhow::anyhow!("encoding safetensors: {e}"))?;
    // Written beside the target and renamed over it: a reader never sees half a file.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut staging = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut staging, &file)
        .with_context(|| format!("writing {}", path.display()))?;
    staging.as_file().sync_all()?;
    staging
        .persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A safetensors file's tensors, as f32, by name.
pub struct PytorchWeights {
    path: String,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// The file's metadata (`kind`, `config`) when `infer export` wrote it.
    pub metadata: HashMap<String, String>,
}

impl PytorchWeights {
    /// Reads every tensor of a safetensors file. f32, f16 and bf16 are read
    /// as f32; every value must be finite.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file = SafeTensors::deserialize(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is not a safetensors file: {e}", path.display()))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is not a safetensors file: {e}", path.display()))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                other => bail!(
                    "{}: tensor `{name}` is {other:?}; weights must be f32, f16 or bf16",
                    path.display()
                ),
            };
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                bail!(
                    "{}: tensor `{name}` holds {} at index {i}: these weights cannot give an answer",
                    path.display(),
                    values[i]
                );
            }
            tensors.insert(name, (view.shape().to_vec(), values));
        }
        Ok(Self {
            path: path.display().to_string(),
            tensors,
            metadata,
        })
    }

    /// The shape of tensor `name`, if the file has it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|(shape, _)| shape.as_slice())
    }

    /// How many `lstm.weight_ih_l{k}` layers the file has.
    pub fn lstm_layers(&self) -> usize {
        (0..)
            .take_while(|k| self.tensors.contains_key(&format!("lstm.weight_ih_l{k}")))
            .count()
    }

    /// `fresh` (a model built from the config these weights are for) with
    /// every parameter taken from the file. Every tensor must have the
    /// shape the config implies, and the file must hold nothing else.
    pub fn load_into<B: Backend, M: Module<B>>(&self, mut fresh: M) -> Result<M> {
        let mut used = std::collections::BTreeSet::new();
        let mut snapshots = Vec::new();
        for snapshot in fresh.collect(None, None, true) {
            let ours = snapshot.full_path();
            let Some(from) = mapping(&ours, in_lstm(&snapshot)) else {
                bail!(
                    "parameter `{ours}` has no counterpart in PyTorch's module: import builds LSTM models"
                );
            };
            let want: Vec<usize> = snapshot.shape.to_vec();
            let their_shape: Vec<usize> = if from.transposed {
                vec![want[1], want[0]]
            } else {
                want.clone()
            };
            let mut values = self.take(&from.name, &their_shape)?;
            used.insert(from.name.clone());
            if let Some(hh) = &from.split_bias {
                let other = self.take(hh, &their_shape)?;
                used.insert(hh.clone());
                values.iter_mut().zip(other).for_each(|(a, b)| *a += b);
            }
            if from.transposed {
                values = transpose(&values, their_shape[0], their_shape[1]);
            }
            let path_stack = snapshot.path_stack.clone().unwrap_or_default();
            let container_stack = snapshot.container_stack.clone().unwrap_or_default();
            snapshots.push(TensorSnapshot::from_data(
                TensorData::new(values, want),
                path_stack,
                container_stack,
                snapshot.tensor_id.unwrap_or_else(ParamId::new),
            ));
        }
        let unused: Vec<&str> = self
            .tensors
            .keys()
            .filter(|name| !used.contains(*name))
            .map(String::as_str)
            .collect();
        ensure!(
            unused.is_empty(),
            "{}: tensors {} belong to no parameter of this model (another architecture?)",
            self.path,
            unused.join(", ")
        );
        let result = fresh.apply(snapshots, None, None, true);
        ensure!(
            result.errors.is_empty() && result.missing.is_empty(),
            "{}: loading failed: {:?} {:?}",
            self.path,
            result.errors,
            result.missing
        );
        Ok(fresh)
    }

    fn take(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let Some((got, values)) = self.tensors.get(name) else {
            bail!("{}: tensor `{name}` is missing", self.path);
        };
        ensure!(
            got == shape,
            "{}: tensor `{name}` has shape {got:?}, the model needs {shape:?}",
            self.path
        );
        Ok(values.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_pytorch() {
        let m = mapping("encoder.layers.1.backward.input.bias", true).unwrap();
        assert_eq!(m.name, "lstm.bias_ih_l1_reverse");
        assert_eq!(m.split_bias.as_deref(), Some("lstm.bias_hh_l1_reverse"));
        let m = mapping("layers.0.recurrent.weight", true).unwrap();
        assert!(m.transposed);
        assert_eq!(m.name, "lstm.weight_hh_l0");
        assert!(!mapping("embedding.weight", false).unwrap().transposed);
        // A GRU's linears share the LSTM's field names.
        assert_eq!(
            mapping("encoder.layers.0.forward.input.weight", false),
            None
        );
        assert_eq!(
            mapping("encoder.layers.0.forward.update.weight", true),
            None
        );
        assert_eq!(mapping("encoder.layers.x.forward.input.weight", true), None);
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        assert_eq!(
            transpose(&[1., 2., 3., 4., 5., 6.], 2, 3),
            [1., 4., 2., 5., 3., 6.]
        );
    }
}
