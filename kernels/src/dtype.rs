//! The element formats a weight tensor can have, and their byte sizes.

/// A tensor's storage format. The numeric codes are part of the `.aha` file
/// format and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DType {
    F32 = 0,
    F16 = 1,
    BF16 = 2,
    Q8_0 = 3,
    Q4_0 = 4,
}

impl DType {
    pub const ALL: [DType; 5] = [DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0];

    pub fn from_code(code: u8) -> Option<DType> {
        Self::ALL.into_iter().find(|d| *d as u8 == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::Q8_0 => "q8_0",
            DType::Q4_0 => "q4_0",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        Self::ALL.into_iter().find(|d| d.name().eq_ignore_ascii_case(name))
    }

    /// Elements per block (1 for the float formats).
    pub fn block_len(self) -> usize {
        match self {
            DType::Q8_0 | DType::Q4_0 => crate::QK,
            _ => 1,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q8_0 => core::mem::size_of::<crate::BlockQ8_0>(),
            DType::Q4_0 => core::mem::size_of::<crate::BlockQ4_0>(),
        }
    }

    pub fn is_quantized(self) -> bool {
        self.block_len() > 1
    }

    /// Bytes of a row of `n` elements, or `None` when `n` is not a whole
    /// number of blocks (or the size overflows).
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_len()) {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }
}

impl core::fmt::Display for DType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// f32 values -> `dtype` bytes (`x.len()` a whole number of blocks).
pub fn quantize(dtype: DType, x: &[f32], out: &mut [u8]) {
    match dtype {
        DType::F32 => crate::f32::scalar::quantize_row(x, out),
        DType::F16 => crate::f16::scalar::quantize_row_f16(x, out),
        DType::BF16 => crate::f16::scalar::quantize_row_bf16(x, out),
        DType::Q8_0 => crate::q8_0::scalar::quantize_row(x, bytemuck::cast_slice_mut(out)),
        DType::Q4_0 => crate::q4_0::scalar::quantize_row(x, bytemuck::cast_slice_mut(out)),
    }
}

/// `dtype` bytes -> f32 values.
pub fn dequantize(dtype: DType, w: &[u8], out: &mut [f32]) {
    match dtype {
        DType::F32 => crate::f32::scalar::dequantize_row(w, out),
        DType::F16 => crate::f16::scalar::dequantize_row_f16(w, out),
        DType::BF16 => crate::f16::scalar::dequantize_row_bf16(w, out),
        DType::Q8_0 => crate::q8_0::scalar::dequantize_row(bytemuck::cast_slice(w), out),
        DType::Q4_0 => crate::q4_0::scalar::dequantize_row(bytemuck::cast_slice(w), out),
    }
}
