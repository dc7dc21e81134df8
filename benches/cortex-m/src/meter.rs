//! Measurements: stack high-water mark by painting, and instructions executed by counting
//! SysTick ticks while QEMU runs with `-icount shift=0` (one instruction per virtual ns).
//!
//! QEMU does not model the DWT cycle counter, and semihosting SYS_CLOCK/SYS_ELAPSED read the
//! host's clocks. Under `-icount shift=0` the virtual clock is the instruction count, and
//! SysTick on the core clock (25 MHz on mps2-an386) ticks once per 40 instructions; a
//! calibration loop of known length measures that ratio instead of assuming it.

use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::exception;

extern "C" {
    /// Top of the stack (initial SP), from cortex-m-rt's link.x.
    static _stack_start: u32;
    /// Lowest address the stack may use (end of .bss/.uninit), from cortex-m-rt's link.x.
    static _stack_end: u32;
}

const PAINT: u32 = 0x5AFE_57AC;
/// How far below the current SP to paint. Far more than any configuration uses; a use beyond it
/// is reported as an overflow of the window rather than a wrong figure.
const PAINT_WINDOW: usize = 256 * 1024;
/// Left unpainted just below the SP, for an exception frame taken while painting.
const PAINT_MARGIN: usize = 256;

fn sp() -> usize {
    let sp: usize;
    // SAFETY: reads the stack pointer; no memory access, no side effects.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack)) };
    sp
}

fn stack_top() -> usize {
    // Only the symbol's address is taken; it is never read.
    ptr::addr_of!(_stack_start) as usize
}

fn stack_limit() -> usize {
    ptr::addr_of!(_stack_end) as usize
}

/// The painted part of the stack.
pub struct StackProbe {
    low: usize,
}

/// Fill the unused stack below the caller with a pattern.
#[inline(never)]
pub fn paint() -> StackProbe {
    let below = (sp() & !3).saturating_sub(PAINT_MARGIN);
    let low = core::cmp::max(stack_limit(), below.saturating_sub(PAINT_WINDOW)) & !3;
    let mut p = low;
    while p < below {
        // SAFETY: [low, below) is RAM between the end of the statics and the live stack (below
        // this function's frame and a margin), which nothing else uses; aligned word writes.
        unsafe { ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
    StackProbe { low }
}

impl StackProbe {
    /// Deepest stack use since [`paint`], in bytes below the top of the stack (so including
    /// the reset handler's and `main`'s frames); `None` if the painted window was exhausted.
    pub fn peak(&self) -> Option<usize> {
        let top = stack_top();
        let mut p = self.low;
        // SAFETY: [low, top) is the stack region in RAM; aligned word reads.
        while p < top && unsafe { ptr::read_volatile(p as *const u32) } == PAINT {
            p += 4;
        }
        if p == self.low {
            None
        } else {
            Some(top - p)
        }
    }
}

static WRAPS: AtomicU32 = AtomicU32::new(0);
const RELOAD: u32 = 0x00FF_FFFF;

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// A free-running 64-bit tick count built on SysTick (core clock) and its wrap interrupt.
pub struct Clock {
    _syst: SYST,
}

impl Clock {
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // The cleared counter reads 0 until its first reload; only count from then on.
        while SYST::get_current() == 0 {}
        Clock { _syst: syst }
    }

    pub fn ticks(&self) -> u64 {
        loop {
            let w = WRAPS.load(Ordering::SeqCst);
            let v = SYST::get_current();
            if WRAPS.load(Ordering::SeqCst) == w {
                return u64::from(w) * u64::from(RELOAD + 1) + u64::from(RELOAD - v);
            }
        }
    }

    /// Ticks taken by `f`.
    pub fn measure<R>(&self, f: impl FnOnce() -> R) -> (R, u64) {
        let t0 = self.ticks();
        let r = f();
        (r, self.ticks() - t0)
    }
}

/// Iterations of the calibration loop (two instructions each: `subs`, `bne`).
pub const CALIBRATION_INSNS: u64 = 2 * CALIBRATION_LOOPS as u64;
const CALIBRATION_LOOPS: u32 = 1_000_000;

/// Ticks taken by [`CALIBRATION_INSNS`] instructions.
#[inline(never)]
pub fn calibrate(clock: &Clock) -> u64 {
    let ((), t) = clock.measure(|| {
        // SAFETY: a register-only countdown loop.
        unsafe {
            core::arch::asm!(
                "2:",
                "subs {n}, {n}, #1",
                "bne 2b",
                n = inout(reg) CALIBRATION_LOOPS => _,
                options(nomem, nostack)
            )
        }
    });
    t
}

/// Instructions per tick, from the calibration (40 under `-icount shift=0` on mps2-an386).
pub fn insns_per_tick(calibration_ticks: u64) -> u64 {
    if calibration_ticks == 0 {
        return 0;
    }
    (CALIBRATION_INSNS + calibration_ticks / 2) / calibration_ticks
}
