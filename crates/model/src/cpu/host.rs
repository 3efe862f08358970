//! Host memory for the CPU backends: a float tensor of ndarray or flex
//! read as, or made from, a plain `Vec<f32>` — how the LSTM kernel and the
//! training crate's fused optimizer get at the numbers.

use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::ops::FloatTensor;

/// A CPU backend whose float tensors can be read and made as plain memory:
/// the LSTM kernel's inputs and outputs, and the training crate's fused
/// optimizer.
pub trait CpuBackend: Backend {
    /// The tensor's values, row-major.
    fn to_vec(tensor: &FloatTensor<Self>) -> Vec<f32>;

    /// The tensor's values, row-major, without a copy when the tensor is the
    /// only owner of contiguous memory.
    fn into_vec(tensor: FloatTensor<Self>) -> Vec<f32> {
        Self::to_vec(&tensor)
    }

    /// A tensor of `shape` holding `values` (moved, not copied).
    fn from_vec(values: Vec<f32>, shape: Shape, device: &Self::Device) -> FloatTensor<Self> {
        Self::float_from_data(TensorData::new(values, shape), device)
    }
}

const F32_ONLY: &str = "the CPU LSTM kernel runs on f32 tensors";

impl CpuBackend for burn::backend::NdArray {
    fn to_vec(tensor: &FloatTensor<Self>) -> Vec<f32> {
        // Not `into_data`: for a tensor that is shared (a parameter) or a
        // view, it walks the elements one by one through a dynamic-rank
        // iterator, at about 30 ns each.
        match tensor {
            burn::backend::ndarray::NdArrayTensor::F32(storage) => {
                let view = storage.view();
                match view.as_slice() {
                    Some(values) => values.to_vec(),
                    None => view.iter().copied().collect(),
                }
            }
            _ => panic!("{F32_ONLY}"),
        }
    }

    fn into_vec(tensor: FloatTensor<Self>) -> Vec<f32> {
        let unique = match &tensor {
            burn::backend::ndarray::NdArrayTensor::F32(storage) => {
                storage.is_unique() && storage.view().as_slice().is_some()
            }
            _ => panic!("{F32_ONLY}"),
        };
        if !unique {
            return Self::to_vec(&tensor);
        }
        // Contiguous and unshared: `into_data` hands over the buffer itself.
        Tensor::<Self, 1>::from_primitive(TensorPrimitive::Float(tensor))
            .into_data()
            .into_vec::<f32>()
            .expect(F32_ONLY)
    }
}

#[cfg(feature = "flex")]
impl CpuBackend for burn::backend::Flex {
    fn to_vec(tensor: &FloatTensor<Self>) -> Vec<f32> {
        match tensor.as_slice::<f32>() {
            Some(values) => values.to_vec(),
            None => Tensor::<Self, 1>::from_primitive(TensorPrimitive::Float(tensor.clone()))
                .into_data()
                .into_vec::<f32>()
                .expect(F32_ONLY),
        }
    }
}
