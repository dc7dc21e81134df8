//! Verifies real swtpm evidence with trustpool-core on a Cortex-M4 (QEMU mps2-an386) and exits
//! through semihosting with status 0 only when the genuine quote is trusted and a tampered copy
//! is not. Also reports the figures `run.sh` checks against `budgets.txt`.
//!
//! Default build: the ECDSA P-256 quote of `test-vectors/swtpm/eventlog/`, no allocator.
//! Feature `alloc-rsa`: the RSA-2048 (RSASSA-SHA256) quote, with a 64 KiB static heap.
#![no_std]
#![no_main]

mod meter;
mod out;

use core::hint::black_box;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
#[cfg(not(feature = "alloc-rsa"))]
use trustpool_core::eventlog::{compare_quote, EventLog, PcrStatus, Replay, Workarounds, ALL_PCRS};
use trustpool_core::pcr::parse_tpm2_tools_pcrs;
#[cfg(not(feature = "alloc-rsa"))]
use trustpool_core::HashAlg;
use trustpool_core::{AttestationKey, PcrSet, Public, Quote, QuoteError, VerifiedQuote};

use out::Out;

/// Parse hex at compile time (surrounding whitespace allowed); the length must be `2 * N`.
const fn hex<const N: usize>(s: &str) -> [u8; N] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not a hex digit"),
        }
    }
    let b = s.as_bytes();
    let mut start = 0;
    while start < b.len() && b[start].is_ascii_whitespace() {
        start += 1;
    }
    let mut end = b.len();
    while end > start && b[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    assert!(end - start == 2 * N, "hex string has the wrong length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = (nibble(b[start + 2 * i]) << 4) | nibble(b[start + 2 * i + 1]);
        i += 1;
    }
    out
}

#[cfg(not(feature = "alloc-rsa"))]
mod evidence {
    //! ECDSA P-256 quote over sha1:0-7 + sha256:0-8, made by swtpm after replaying the
    //! synthetic event log into the TPM.
    pub const NAME: &str = "ecdsa-p256 (swtpm eventlog quote)";
    pub const AK: &[u8] = include_bytes!("../../../test-vectors/swtpm/eventlog/ak.pub");
    pub const ATTEST: &[u8] = include_bytes!("../../../test-vectors/swtpm/eventlog/quote.attest");
    pub const SIG: &[u8] = include_bytes!("../../../test-vectors/swtpm/eventlog/quote.sig");
    pub const PCRS: &[u8] = include_bytes!("../../../test-vectors/swtpm/eventlog/quote.pcrs");
    pub const NONCE: [u8; 20] = super::hex(include_str!(
        "../../../test-vectors/swtpm/eventlog/nonce.hex"
    ));
    /// The synthetic crypto-agile UEFI event log (SHA-1 + SHA-256 digests) whose extends
    /// produced the quoted PCRs.
    pub const EVENTLOG: &[u8] =
        include_bytes!("../../../test-vectors/swtpm/eventlog/synthetic.bin");
    /// The host's whitelist, compiled (`trustpool policy compile`), read in place from flash.
    pub const POLICY: &[u8] = include_bytes!("../../../test-vectors/swtpm/eventlog/policy.tpw");
}

#[cfg(feature = "alloc-rsa")]
mod evidence {
    //! RSA-2048 RSASSA-SHA256 quote over sha256:0-7.
    pub const NAME: &str = "rsa2048-rsassa-sha256";
    pub const AK: &[u8] = include_bytes!("../../../test-vectors/swtpm/rsa-rsassa.pub");
    pub const ATTEST: &[u8] =
        include_bytes!("../../../test-vectors/swtpm/rsa-rsassa.sha256.attest");
    pub const SIG: &[u8] = include_bytes!("../../../test-vectors/swtpm/rsa-rsassa.sha256.sig");
    pub const PCRS: &[u8] = include_bytes!("../../../test-vectors/swtpm/rsa-rsassa.sha256.pcrs");
    pub const NONCE: [u8; 20] = super::hex("26c554c2f0deca4a3f53693e5e5dda39b80d8656");
}

#[cfg(feature = "alloc-rsa")]
mod heap {
    //! `embedded-alloc`'s linked-list heap over a 64 KiB static arena, wrapped to record the
    //! peak number of bytes allocated.
    use core::alloc::{GlobalAlloc, Layout};
    use core::mem::MaybeUninit;
    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    use embedded_alloc::LlffHeap;

    pub const SIZE: usize = 64 * 1024;

    struct Counting {
        heap: LlffHeap,
        used: AtomicUsize,
        peak: AtomicUsize,
    }

    #[global_allocator]
    static HEAP: Counting = Counting {
        heap: LlffHeap::empty(),
        used: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
    };

    // SAFETY: delegates to LlffHeap (a GlobalAlloc) and only adds counters.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = self.heap.alloc(layout);
            if !p.is_null() {
                let used = self.used.fetch_add(layout.size(), Relaxed) + layout.size();
                self.peak.fetch_max(used, Relaxed);
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            self.heap.dealloc(ptr, layout);
            self.used.fetch_sub(layout.size(), Relaxed);
        }
    }

    /// Hand the arena to the allocator. Call once, before any allocation.
    pub fn init() {
        static mut ARENA: [MaybeUninit<u8>; SIZE] = [MaybeUninit::uninit(); SIZE];
        // SAFETY: called once at the start of main, before anything allocates; the arena is
        // used by nothing else.
        unsafe {
            HEAP.heap
                .init(core::ptr::addr_of_mut!(ARENA) as usize, SIZE)
        }
    }

    /// Most bytes allocated at once so far.
    pub fn peak() -> usize {
        HEAP.peak.load(Relaxed)
    }

    /// Bytes allocated now.
    pub fn used() -> usize {
        HEAP.used.load(Relaxed)
    }
}

/// Why evidence was not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Untrusted {
    /// The attestation key's TPM2B_PUBLIC does not parse.
    AkMalformed,
    /// The AK is not a restricted signing key.
    AkNotSuitable,
    /// Signature, nonce or attest structure rejected.
    Quote(QuoteError),
    /// The PCR values file does not parse.
    PcrFileMalformed,
    /// The PCR values do not match the quote's digest.
    Pcrs(QuoteError),
}

impl Untrusted {
    fn name(&self) -> &'static str {
        match self {
            Untrusted::AkMalformed => "ak-malformed",
            Untrusted::AkNotSuitable => "ak-not-restricted-signing",
            Untrusted::Quote(e) | Untrusted::Pcrs(e) => e.code(),
            Untrusted::PcrFileMalformed => "pcr-file-malformed",
        }
    }
}

/// The whole check a verifier makes: parse the AK, verify the quote's signature and nonce, parse
/// the PCR values file into `pcrs` and check it against the quote's PCR digest.
#[inline(never)]
fn verify_quote<'a>(attest: &'a [u8], pcrs: &mut PcrSet) -> Result<VerifiedQuote<'a>, Untrusted> {
    let public = Public::parse_tpm2b(evidence::AK).map_err(|_| Untrusted::AkMalformed)?;
    let ak = AttestationKey::from_public(public).map_err(|_| Untrusted::AkNotSuitable)?;
    let quote =
        Quote::verify(attest, evidence::SIG, &ak, &evidence::NONCE).map_err(Untrusted::Quote)?;
    parse_tpm2_tools_pcrs(evidence::PCRS, pcrs).map_err(|_| Untrusted::PcrFileMalformed)?;
    quote.check_pcrs(pcrs).map_err(Untrusted::Pcrs)?;
    Ok(quote)
}

/// How the replayed event log compares with the quoted PCRs.
#[cfg(not(feature = "alloc-rsa"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LogCheck {
    /// Quoted PCRs whose replayed value equals the quoted one.
    matched: u32,
    /// Quoted PCRs of the SHA-1 bank, which is not replayed.
    not_replayed: u32,
    /// Anything else: mismatch, missing digest, no quoted value.
    failed: u32,
}

/// Parse the event log, replay it from the PCRs' reset values into `slot`, and compare every
/// PCR the quote selects with the quoted value.
#[cfg(not(feature = "alloc-rsa"))]
#[inline(never)]
fn check_eventlog(
    quote: &VerifiedQuote<'_>,
    quoted: &PcrSet,
    slot: &mut Option<Replay>,
) -> Result<LogCheck, &'static str> {
    let log = EventLog::parse(evidence::EVENTLOG).map_err(|_| "eventlog-malformed")?;
    let replay = start_replay(slot)?;
    replay.feed_all(log.events());
    let comparison =
        compare_quote(replay, quote, quoted, Workarounds::default()).map_err(|e| e.code())?;
    let mut check = LogCheck {
        matched: 0,
        not_replayed: 0,
        failed: 0,
    };
    for c in comparison {
        match c.status {
            PcrStatus::Match => check.matched += 1,
            PcrStatus::NotReplayed if c.alg == HashAlg::Sha1.id() => check.not_replayed += 1,
            _ => check.failed += 1,
        }
    }
    Ok(check)
}

/// A replay of the SHA-256 bank (the one a verifier should rely on; SHA-1 needs core's `sha1`
/// feature), from the PCRs' reset values, reset in place in `slot` (a static), so the 6 KiB
/// `Replay` is not built by value and moved (an empty one is, once).
#[cfg(not(feature = "alloc-rsa"))]
#[inline(never)]
fn start_replay(slot: &mut Option<Replay>) -> Result<&mut Replay, &'static str> {
    let replay = slot.get_or_insert_with(Replay::empty);
    match replay.reset(&[HashAlg::Sha256], ALL_PCRS) {
        Ok(()) => Ok(replay),
        Err(_) => Err("sha256-not-replayable"),
    }
}

fn verdict(trusted: bool) -> &'static str {
    if trusted {
        "trusted"
    } else {
        "untrusted"
    }
}

/// The run's output, measurements and overall result.
struct Run {
    out: Out,
    clock: meter::Clock,
    insns_per_tick: u64,
    stack_peak: usize,
    ok: bool,
}

impl Run {
    /// Run one phase on a freshly painted stack; report its stack use and instruction count.
    fn phase<R>(&mut self, name: &str, f: impl FnOnce() -> R) -> R {
        let probe = meter::paint();
        let (r, ticks) = self.clock.measure(f);
        let stack = probe.peak();
        self.out.str("stack-").str(name).str(": ");
        match stack {
            Some(bytes) => {
                self.out.num(bytes as u64).str("\n");
                self.stack_peak = self.stack_peak.max(bytes);
            }
            None => {
                self.out.str("overflowed the painted window\n");
                self.ok = false;
            }
        }
        self.out.str("instructions-").str(name).str(": ");
        self.out.num(ticks * self.insns_per_tick).str("\n");
        r
    }

    /// `what: verdict (reason)` on one line.
    fn verdict(&mut self, what: &str, trusted: bool, reason: &str) {
        self.out.str(what).str(": ").str(verdict(trusted));
        if !reason.is_empty() {
            self.out.str(" (").str(reason).str(")");
        }
        self.out.str("\n");
    }
}

/// The event log phase: replay, compare with the quoted PCRs, report; whether it matched.
#[cfg(not(feature = "alloc-rsa"))]
fn eventlog_phase(run: &mut Run, quote: &VerifiedQuote<'_>, pcrs: &PcrSet) -> bool {
    let Some(slot) = cortex_m::singleton!(REPLAY: Option<Replay> = None) else {
        fail(&mut run.out, "singleton already taken");
    };
    let check = run.phase("eventlog", || check_eventlog(quote, pcrs, slot));
    run.out.str("eventlog: ");
    match check {
        Ok(c) => {
            let good = c.failed == 0 && c.matched > 0;
            run.out
                .str(if good {
                    "matches quote"
                } else {
                    "DOES NOT match quote"
                })
                .str(" (")
                .num(c.matched.into())
                .str(" quoted PCRs = replayed, ")
                .num(c.not_replayed.into())
                .str(" SHA-1 PCRs not replayed, ")
                .num(c.failed.into())
                .str(" failed)\n");
            good
        }
        Err(e) => {
            run.out.str("error (").str(e).str(")\n");
            false
        }
    }
}

/// The appraisal phase: quote, PCR values, log replay and the whitelist's rules, with the
/// compact whitelist read in place; whether the verdict is trusted.
#[cfg(feature = "appraise")]
fn appraise_phase(run: &mut Run, pcrs: &PcrSet, log: &[u8]) -> (bool, &'static str) {
    use trustpool_core::appraise::{appraise, Evidence, Verdict};
    let result = run.phase(
        "appraise",
        || -> Result<(bool, &'static str), &'static str> {
            let wl = trustpool_core::whitelist::Whitelist::parse(black_box(evidence::POLICY))
                .map_err(|_| "whitelist-malformed")?;
            let public =
                trustpool_core::Public::parse_tpm2b(evidence::AK).map_err(|_| "ak-malformed")?;
            let ak = trustpool_core::AttestationKey::from_public(public).map_err(|e| e.code())?;
            let ev = Evidence {
                attest: evidence::ATTEST,
                signature: trustpool_core::Signature::parse(evidence::SIG)
                    .map_err(|_| "signature-malformed")?,
                ak,
                nonce: &evidence::NONCE,
                pcrs: Some(pcrs),
                event_log: Some(log),
                workarounds: Default::default(),
                runtime_pcrs: 0,
            };
            let v: Verdict<'_, 4> = appraise(&trustpool_core::RustCrypto, &ev, &wl);
            let why = v.failures().next().map_or("", |f| f.rule.name());
            Ok((v.trusted, why))
        },
    );
    result.unwrap_or_else(|e| (false, e))
}

#[entry]
fn main() -> ! {
    let mut out = Out::new();
    #[cfg(feature = "alloc-rsa")]
    heap::init();
    let Some(cp) = cortex_m::Peripherals::take() else {
        fail(&mut out, "peripherals already taken");
    };
    // The PCR values (a 6 KiB `PcrSet`) live in .bss, not on the stack.
    let Some(pcrs) = cortex_m::singleton!(QUOTED: PcrSet = PcrSet::new()) else {
        fail(&mut out, "singleton already taken");
    };
    let clock = meter::Clock::start(cp.SYST);
    let calibration = meter::calibrate(&clock);
    let insns_per_tick = meter::insns_per_tick(calibration);

    let config = if cfg!(feature = "alloc-rsa") {
        "alloc-rsa"
    } else if cfg!(feature = "appraise") {
        "p256-appraise"
    } else {
        "p256-noalloc"
    };
    out.kv("config", config);
    out.kv("evidence", evidence::NAME);
    out.str("calibration: ")
        .num(meter::CALIBRATION_INSNS)
        .str(" instructions = ")
        .num(calibration)
        .str(" ticks (")
        .num(insns_per_tick)
        .str(" instructions/tick)\n");
    let mut run = Run {
        out,
        clock,
        insns_per_tick,
        stack_peak: 0,
        ok: true,
    };

    // 1. The genuine quote: AK, signature, nonce, PCR values file, PCR digest.
    let quote = run.phase("verify", || verify_quote(black_box(evidence::ATTEST), pcrs));
    let reason = quote.as_ref().err().map_or("", Untrusted::name);
    run.out.str("quote: ").str(if quote.is_ok() {
        "verified"
    } else {
        "rejected"
    });
    if !reason.is_empty() {
        run.out.str(" (").str(reason).str(")");
    }
    run.out.str("\n");

    // 2. The event log, replayed and compared with the quoted PCRs.
    #[cfg(not(feature = "alloc-rsa"))]
    let log_matches = match &quote {
        Ok(q) => eventlog_phase(&mut run, q, pcrs),
        Err(_) => false,
    };
    #[cfg(feature = "alloc-rsa")]
    let log_matches = true;
    let trusted = quote.is_ok() && log_matches;
    run.verdict("verdict", trusted, reason);
    run.ok &= trusted;

    // 2b. The whole appraisal against the compiled whitelist, and again with a log whose last
    //     event's SHA-256 digest was changed (its last byte sits just before the 4-byte event
    //     size and the 40-byte "Exit Boot Services Returned with Success"): the replay no
    //     longer gives the quoted PCR 5.
    #[cfg(feature = "appraise")]
    {
        let (trusted, why) = appraise_phase(&mut run, pcrs, evidence::EVENTLOG);
        run.verdict("appraisal", trusted, why);
        run.ok &= trusted;
        let mut log = [0u8; evidence::EVENTLOG.len()];
        log.copy_from_slice(evidence::EVENTLOG);
        if let Some(b) = log.get_mut(evidence::EVENTLOG.len().saturating_sub(45)) {
            *b ^= 0x01;
        }
        let (trusted, why) = appraise_phase(&mut run, pcrs, &log);
        run.verdict("appraisal-tampered", trusted, why);
        run.ok &= !trusted;
    }

    // 3. The same quote with one byte flipped, in RAM: the last byte of pcrDigest, so the
    //    attest still parses and the signature check must fail.
    let mut tampered = [0u8; evidence::ATTEST.len()];
    tampered.copy_from_slice(evidence::ATTEST);
    if let Some(last) = tampered.last_mut() {
        *last ^= 0x01;
    }
    *pcrs = PcrSet::new();
    let result = run.phase("tampered", || verify_quote(black_box(&tampered), pcrs));
    let reason = result.as_ref().err().map_or("", Untrusted::name);
    run.verdict("tampered", result.is_ok(), reason);
    run.ok &= matches!(result, Err(Untrusted::Quote(QuoteError::BadSignature)));

    run.out.kn("stack-peak", run.stack_peak as u64);
    #[cfg(feature = "alloc-rsa")]
    {
        run.out.kn("heap-peak", heap::peak() as u64);
        run.out.kn("heap-arena", heap::SIZE as u64);
        if heap::used() != 0 {
            run.out.kn("heap-leaked", heap::used() as u64);
            run.ok = false;
        }
    }
    #[cfg(not(feature = "alloc-rsa"))]
    run.out.kn("heap-peak", 0);

    let ok = run.ok;
    run.out.kv("result", if ok { "pass" } else { "FAIL" });
    exit(ok)
}

/// End the QEMU process: status 0 when `ok`, 1 otherwise.
fn exit(ok: bool) -> ! {
    debug::exit(if ok { EXIT_SUCCESS } else { EXIT_FAILURE });
    // Only reached without a semihosting host.
    loop {
        cortex_m::asm::wfi();
    }
}

fn fail(out: &mut Out, why: &str) -> ! {
    out.kv("error", why);
    exit(false)
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    Out::new().kv("error", "hard fault");
    exit(false)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    Out::new().kv("error", "panic");
    exit(false)
}
