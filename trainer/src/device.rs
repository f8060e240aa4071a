//! Which burn device runs the work, and in which precision.
//!
//! burn 0.22 picks the backend at run time: one binary carries the pure-Rust
//! CPU backend (`flex`) and the GPU backends (`wgpu`, which lets wgpu pick an
//! API, and `vulkan`). Other burn backends (`cuda`, `cpu`) work the same way
//! once their cargo feature is enabled; nothing else here would change.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, DeviceKind, FloatDType};

use crate::error::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// burn's pure-Rust CPU backend: the default, and what tests use.
    #[default]
    Flex,
    /// A GPU through wgpu, whichever graphics API it picks.
    Wgpu,
    /// A GPU through Vulkan.
    Vulkan,
}

impl DeviceChoice {
    pub const NAMES: [&'static str; 3] = ["flex", "wgpu", "vulkan"];

    /// The burn device, without autodiff.
    pub fn device(self) -> Device {
        match self {
            DeviceChoice::Flex => Device::flex(),
            DeviceChoice::Wgpu => Device::wgpu(DeviceKind::DefaultDevice),
            DeviceChoice::Vulkan => Device::vulkan(DeviceKind::DefaultDevice),
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
            "wgpu" => Ok(DeviceChoice::Wgpu),
            "vulkan" => Ok(DeviceChoice::Vulkan),
            other => Err(Error::Usage(format!("unknown device `{other}` (flex, wgpu or vulkan)"))),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Flex => "flex",
            DeviceChoice::Wgpu => "wgpu",
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
