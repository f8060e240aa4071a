//! What a model needs on a microcontroller that runs it the way the firmware
//! in `firmware/cortex-m` does (model read in place from flash, no heap),
//! and whether that fits a named board: flash for the model file and the
//! program; RAM for the session's arena (KV cache + scratch), the prompt's
//! buffers and the stack. The program's own share and the stack are
//! measured on that firmware (see the constants), not derived; the rest is
//! exact. `aha inspect --target` prints it; the firmware's QEMU test checks
//! the estimate against the built ELF.

use crate::model::MemoryPlan;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// A board's memory, as the firmware can use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Board {
    pub name: &'static str,
    /// Other names `--target` accepts.
    pub aliases: &'static [&'static str],
    pub core: &'static str,
    /// The Rust target the firmware is built for on it.
    pub rust_target: &'static str,
    pub flash: u64,
    /// All on-chip RAM.
    pub ram: u64,
    /// The largest contiguous RAM region: the arena is one buffer, so it must fit here.
    pub ram_block: u64,
    pub note: &'static str,
}

/// Boards `aha inspect --target` knows, from their reference manuals and
/// datasheets (QEMU's for mps2-an386).
pub const BOARDS: [Board; 7] = [
    Board {
        name: "mps2-an386",
        aliases: &["cortex-m4", "qemu"],
        core: "Cortex-M4F",
        rust_target: "thumbv7em-none-eabihf",
        flash: 4 * MIB,
        ram: 4 * MIB,
        ram_block: 4 * MIB,
        note: "QEMU's Arm MPS2 board with the AN386 image, where the firmware is tested",
    },
    Board {
        name: "stm32f407",
        aliases: &["stm32f4", "stm32f4-discovery"],
        core: "Cortex-M4F, 168 MHz",
        rust_target: "thumbv7em-none-eabihf",
        flash: MIB,
        ram: 192 * KIB,
        ram_block: 128 * KIB,
        note: "112 + 16 KiB contiguous SRAM, plus 64 KiB CCM (stack, not the arena)",
    },
    Board {
        name: "stm32f411",
        aliases: &["blackpill"],
        core: "Cortex-M4F, 100 MHz",
        rust_target: "thumbv7em-none-eabihf",
        flash: 512 * KIB,
        ram: 128 * KIB,
        ram_block: 128 * KIB,
        note: "",
    },
    Board {
        name: "nrf52840",
        aliases: &["nrf52"],
        core: "Cortex-M4F, 64 MHz",
        rust_target: "thumbv7em-none-eabihf",
        flash: MIB,
        ram: 256 * KIB,
        ram_block: 256 * KIB,
        note: "",
    },
    Board {
        name: "stm32f746",
        aliases: &["stm32f7", "cortex-m7"],
        core: "Cortex-M7F, 216 MHz",
        rust_target: "thumbv7em-none-eabihf",
        flash: MIB,
        ram: 320 * KIB,
        ram_block: 320 * KIB,
        note: "DTCM + SRAM1 + SRAM2 are contiguous",
    },
    Board {
        name: "stm32h743",
        aliases: &["stm32h7"],
        core: "Cortex-M7F, 480 MHz",
        rust_target: "thumbv7em-none-eabihf",
        flash: 2 * MIB,
        ram: MIB,
        ram_block: 512 * KIB,
        note: "the arena in the 512 KiB AXI SRAM; the rest is split in smaller regions",
    },
    Board {
        name: "rp2350",
        aliases: &["pico2"],
        core: "Cortex-M33F, 150 MHz",
        rust_target: "thumbv8m.main-none-eabihf",
        flash: 4 * MIB,
        ram: 520 * KIB,
        ram_block: 512 * KIB,
        note: "Raspberry Pi Pico 2: 4 MiB of external QSPI flash, read in place (XIP)",
    },
];

/// The board `--target` names (its name or an alias, any case).
pub fn board(name: &str) -> Option<&'static Board> {
    BOARDS.iter().find(|b| b.name.eq_ignore_ascii_case(name) || b.aliases.iter().any(|a| a.eq_ignore_ascii_case(name)))
}

/// Flash the firmware takes besides the model file: its code (the runtime,
/// tokenizer included, the kernels, formatting, semihosting) and constant
/// tables (Unicode normalisation, CRC-32). Measured on `firmware/cortex-m`
/// for thumbv7em-none-eabihf (opt-level "s", kernels at 3, fat LTO): 149 KB
/// (`runtime/tests/firmware.rs` prints it); this leaves room for a board
/// support crate.
pub const PROGRAM_FLASH: u64 = 192 * KIB;

/// Stack: the firmware's deepest, measured by stack painting under QEMU, is
/// 5.7 KB (the generator holds a 1 KiB text buffer); twice that, rounded up.
pub const STACK: u64 = 12 * KIB;

/// Prompt text the estimate sizes the prompt's buffers for (the firmware
/// sizes them for its actual prompt).
pub const PROMPT_BYTES: usize = 256;

/// Bytes of the firmware's prompt buffers for `text_bytes` of rendered
/// prompt: token ids (one per byte at most, plus a bos) and the tokenizer's
/// scratch.
pub const fn prompt_buffers(text_bytes: usize) -> u64 {
    ((text_bytes + 1) * 4 + crate::tokenizer::Tokenizer::scratch_bound(text_bytes) * 4) as u64
}

/// Flash and RAM for one model file and memory plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    pub model_file: u64,
    pub program: u64,
    pub arena: u64,
    pub prompt_buffers: u64,
    pub stack: u64,
}

/// How a footprint sits in a board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fit {
    pub flash: bool,
    pub ram: bool,
    /// The arena fits the largest contiguous RAM region.
    pub arena: bool,
}

impl Fit {
    pub fn fits(&self) -> bool {
        self.flash && self.ram && self.arena
    }
}

impl Footprint {
    /// The footprint of a model file of `model_file` bytes run with `plan`
    /// (`model.memory_plan(context, kv)`).
    pub fn new(model_file: usize, plan: &MemoryPlan) -> Footprint {
        Footprint {
            model_file: model_file as u64,
            program: PROGRAM_FLASH,
            arena: plan.total() as u64,
            prompt_buffers: prompt_buffers(PROMPT_BYTES),
            stack: STACK,
        }
    }

    pub fn flash(&self) -> u64 {
        self.model_file + self.program
    }

    pub fn ram(&self) -> u64 {
        self.arena + self.prompt_buffers + self.stack
    }

    pub fn fit(&self, board: &Board) -> Fit {
        Fit { flash: self.flash() <= board.flash, ram: self.ram() <= board.ram, arena: self.arena <= board.ram_block }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::KvType;

    #[test]
    fn boards_by_name_and_alias() {
        assert_eq!(board("cortex-m4").map(|b| b.name), Some("mps2-an386"));
        assert_eq!(board("STM32F4").map(|b| b.name), Some("stm32f407"));
        assert_eq!(board("stm32f407").map(|b| b.flash), Some(MIB));
        assert!(board("esp32").is_none());
        for b in &BOARDS {
            assert!(b.ram_block <= b.ram, "{}", b.name);
        }
    }

    #[test]
    fn fits_where_each_part_fits() {
        let plan = MemoryPlan { context: 64, kv_type: KvType::F16, batch: 1, sequences: 1, kv_bytes: 100 * 1024, scratch_bytes: 20 * 1024 };
        let f = Footprint::new(700 * 1024, &plan);
        assert_eq!(f.flash(), 700 * 1024 + PROGRAM_FLASH);
        assert_eq!(f.ram(), plan.total() as u64 + prompt_buffers(PROMPT_BYTES) + STACK);
        let m4 = board("cortex-m4").unwrap();
        assert!(f.fit(m4).fits());
        // 1 MiB of flash holds it; 128 KiB of contiguous RAM does not hold 120 KiB + buffers + stack.
        let f4 = board("stm32f4").unwrap();
        assert_eq!(f.fit(f4), Fit { flash: true, ram: true, arena: true });
        let f411 = board("stm32f411").unwrap();
        assert_eq!(f.fit(f411), Fit { flash: false, ram: false, arena: true });
    }
}
