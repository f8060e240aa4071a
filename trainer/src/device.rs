//! Which burn device runs the work, and in which precision.
//!
//! burn 0.22 picks the backend at run time: one binary carries the pure-Rust
//! CPU backend (`flex`) and, when built with the `gpu` feature (`cargo build
//! --release --features gpu`), the GPU backends (`wgpu`, which lets wgpu pick
//! an API, and `vulkan`). The GPU backends are opt-in because they are about
//! half of a clean build; a build without them refuses `--device wgpu|vulkan`
//! with the command that adds them. Other burn backends (`cuda`, `cpu`) work
//! the same way once their cargo feature is enabled; nothing else here would
//! change.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, FloatDType};

use crate::error::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// burn's pure-Rust CPU backend: the default, and what tests use.
    #[default]
    Flex,
    /// A GPU through wgpu, whichever graphics API it picks.
    #[cfg(feature = "gpu")]
    Wgpu,
    /// A GPU through Vulkan.
    #[cfg(feature = "gpu")]
    Vulkan,
}

/// Names a GPU device in a build without the GPU backends.
#[cfg(not(feature = "gpu"))]
fn not_built(name: &str) -> Error {
    Error::Usage(format!(
        "device `{name}` needs burn's GPU backends, which this build leaves out: rebuild with `--features gpu` \
         (`cargo run --release --features gpu -- ...`); `flex` is the CPU"
    ))
}

impl DeviceChoice {
    pub const NAMES: [&'static str; 3] = ["flex", "wgpu", "vulkan"];

    /// The burn device, without autodiff.
    pub fn device(self) -> Device {
        match self {
            DeviceChoice::Flex => Device::flex(),
            #[cfg(feature = "gpu")]
            DeviceChoice::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(feature = "gpu")]
            DeviceChoice::Vulkan => Device::vulkan(burn::tensor::DeviceKind::DefaultDevice),
        }
    }

    /// The device a training run uses: autodiff on, and activations
    /// recomputed in the backward pass when `checkpointing`.
    pub fn training_device(self, checkpointing: bool) -> Device {
        let device = self.device().autodiff();
        if checkpointing {
            device.gradient_checkpointing()
        } else {
            device
        }
    }

    /// The precision named (`f32`, `bf16`, `f16`), or this device's default
    /// when the name is empty.
    pub fn precision(self, named: &str) -> crate::error::Result<Precision> {
        if named.is_empty() {
            Ok(self.default_precision())
        } else {
            named.parse()
        }
    }

    pub fn is_gpu(self) -> bool {
        self != DeviceChoice::Flex
    }

    /// The precision training uses unless told otherwise: bf16 compute on a
    /// GPU (f32 master weights), f32 on the CPU, where half precision is
    /// emulated and slower.
    pub fn default_precision(self) -> Precision {
        if self.is_gpu() {
            Precision::Bf16
        } else {
            Precision::F32
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "flex" | "cpu" => Ok(DeviceChoice::Flex),
            #[cfg(feature = "gpu")]
            "wgpu" => Ok(DeviceChoice::Wgpu),
            #[cfg(feature = "gpu")]
            "vulkan" => Ok(DeviceChoice::Vulkan),
            #[cfg(not(feature = "gpu"))]
            name @ ("wgpu" | "vulkan") => Err(not_built(name)),
            other => Err(Error::Usage(format!("unknown device `{other}` (flex, wgpu or vulkan)"))),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Flex => "flex",
            #[cfg(feature = "gpu")]
            DeviceChoice::Wgpu => "wgpu",
            #[cfg(feature = "gpu")]
            DeviceChoice::Vulkan => "vulkan",
        })
    }
}

/// The dtype matmuls and activations run in. Parameters (the "master
/// weights"), optimizer state, norms' statistics, softmax and the loss stay
/// in f32 whatever this says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl Precision {
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
            Precision::F16 => FloatDType::F16,
        }
    }
}

impl FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "f32" | "fp32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "f16" | "fp16" => Ok(Precision::F16),
            other => Err(Error::Usage(format!("unknown precision `{other}` (f32, bf16 or f16)"))),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_by_name() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Flex);
        assert!("tpu".parse::<DeviceChoice>().unwrap_err().to_string().contains("unknown device `tpu`"));
        for name in ["wgpu", "vulkan"] {
            let parsed = name.parse::<DeviceChoice>();
            if cfg!(feature = "gpu") {
                assert_eq!(parsed.unwrap().to_string(), name);
            } else {
                let e = parsed.unwrap_err().to_string();
                assert!(e.contains(name) && e.contains("--features gpu"), "{e}");
            }
        }
    }
}
