//! `cargo run --release -p train`: trains the LSTM + attention classifier on
//! `datasets/mr` and writes the artifact `artifacts/mr`.
//!
//! The backend is chosen here and nowhere else: ndarray by default, wgpu with
//! `--features wgpu`.

use clap::Parser;
use train::classify;

#[cfg(not(feature = "wgpu"))]
mod backend {
    pub type Backend = burn::backend::NdArray;
    pub const NAME: &str = "ndarray";
}
#[cfg(feature = "wgpu")]
mod backend {
    pub type Backend = burn::backend::Wgpu;
    pub const NAME: &str = "wgpu";
}

type TrainBackend = burn::backend::Autodiff<backend::Backend>;

fn main() {
    let args = classify::ClassifyArgs::parse();
    let device = Default::default();
    if let Err(err) = classify::run::<TrainBackend>(&args, &device, backend::NAME) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
