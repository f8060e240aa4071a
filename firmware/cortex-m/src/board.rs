//! Board glue shared by the firmware's programs: the cycle clock (SysTick),
//! where flash and RAM went, and exits (semihosting status) on success,
//! error, panic or fault.

use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hio};

// --- clock ---------------------------------------------------------------

/// SysTick wraps every 2^24 ticks; the exception counts the wraps.
static WRAPS: AtomicU32 = AtomicU32::new(0);
const RELOAD: u32 = 0x00FF_FFFF;

pub fn start_clock(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    // Cleared, the counter reads 0 until its first tick loads RELOAD, and
    // that load is no wrap: wait for it so `ticks` starts at 0.
    while SYST::get_current() == 0 {}
}

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Core clock ticks since `start_clock` (64-bit, so it never wraps).
pub fn ticks() -> u64 {
    loop {
        let wraps = WRAPS.load(Ordering::Acquire);
        let current = SYST::get_current();
        // A wrap between the two reads would pair an old count with a new
        // value; the exception runs at once, so reading again tells.
        if WRAPS.load(Ordering::Acquire) == wraps {
            return ((wraps as u64) << 24) + (RELOAD - current) as u64;
        }
    }
}

// --- memory --------------------------------------------------------------

/// Where the program's bytes went, from cortex-m-rt's linker symbols.
pub struct MemoryMap {
    /// Everything in flash: vector table, code, constants, `.data`'s image.
    pub flash: usize,
    /// Vector table and `.text`.
    pub code: usize,
    pub rodata: usize,
    pub data: usize,
    /// `.data` + `.bss` + `.uninit` in RAM.
    pub statics: usize,
    /// The stack's high-water mark so far.
    pub stack: usize,
}

pub fn memory_map() -> MemoryMap {
    extern "C" {
        static __vector_table: u32;
        static __etext: u32;
        static __srodata: u32;
        static __erodata: u32;
        static __sdata: u32;
        static __edata: u32;
        static __sidata: u32;
        static __euninit: u32;
    }
    let at = |p: *const u32| p as usize;
    let (base, data) = (at(core::ptr::addr_of!(__vector_table)), at(core::ptr::addr_of!(__sdata)));
    let data_len = at(core::ptr::addr_of!(__edata)) - data;
    MemoryMap {
        flash: at(core::ptr::addr_of!(__sidata)) + data_len - base,
        code: at(core::ptr::addr_of!(__etext)) - base,
        rodata: at(core::ptr::addr_of!(__erodata)) - at(core::ptr::addr_of!(__srodata)),
        data: data_len,
        statics: at(core::ptr::addr_of!(__euninit)) - data,
        stack: stack_used(),
    }
}

/// The deepest the stack has reached: cortex-m-rt's `paint-stack` fills the
/// free RAM between `_stack_end` (after `.bss`) and `_stack_start` (the top)
/// with `STACK_PAINT_VALUE` at reset; the lowest word that differs is the
/// high-water mark.
pub fn stack_used() -> usize {
    extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut at = core::ptr::addr_of!(_stack_end) as usize;
    while at < top {
        // SAFETY: [_stack_end, _stack_start) is RAM reserved for the stack
        // (the linker script puts nothing else there), word-aligned (it
        // asserts so); a volatile read of it has no side effects.
        let word = unsafe { core::ptr::read_volatile(at as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        at += 4;
    }
    top - at
}

// --- exits -----------------------------------------------------------------

pub fn exit(ok: bool) -> ! {
    debug::exit(if ok { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    // Reached only if the debugger resumes the program.
    loop {
        cortex_m::asm::wfi();
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        let _ = writeln!(out, "[aha] hard fault at pc {:#010x}", frame.pc());
    }
    exit(false)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        let _ = writeln!(out, "[aha] panic: {info}");
    }
    exit(false)
}
