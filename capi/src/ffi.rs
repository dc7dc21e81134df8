//! The only places that turn C pointers into Rust references. Every check the C API makes on a
//! pointer (NULL, length, alignment) is here.

use crate::{tp_pcr_bank, tp_pcrs, tp_verdict, TP_MAX_BANKS, TP_MAX_DIGEST_SIZE};

/// The input `ptr[..len]`: `None` when `ptr` is NULL with a non-zero length or `len` exceeds
/// `isize::MAX`; NULL with length 0 is the empty input.
///
/// # Safety
///
/// Unless NULL, `ptr` must point to `len` readable bytes that are not written during `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return if len == 0 { Some(&[]) } else { None };
    }
    if isize::try_from(len).is_err() {
        return None;
    }
    // SAFETY: non-NULL, `len` fits `isize`, and the caller guarantees `len` readable bytes that
    // stay unchanged for 'a; u8 has no alignment requirement.
    Some(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// Whether `ptr` is NULL or aligned for `T`.
pub(crate) fn is_null_or_aligned<T>(ptr: *const T) -> bool {
    ptr.is_null() || ptr.is_aligned()
}

/// Output structs for which all-zero bytes are a valid value (integers and arrays of them).
///
/// # Safety
///
/// Only for types whose every field is an integer, a `c_char`, or an array or struct of those.
pub(crate) unsafe trait ZeroValid {}
// SAFETY: integers and arrays of integers only.
unsafe impl ZeroValid for tp_pcrs {}
// SAFETY: integers, c_char arrays and structs of integers only.
unsafe impl ZeroValid for tp_verdict {}

/// The output struct at `ptr`, zeroed first (so it is initialized whatever the caller left in
/// it); `None` if `ptr` is NULL or misaligned.
///
/// # Safety
///
/// Unless NULL, `ptr` must point to writable memory for a `T` that nothing else accesses
/// during `'a`.
pub(crate) unsafe fn out_zeroed<'a, T: ZeroValid>(ptr: *mut T) -> Option<&'a mut T> {
    if ptr.is_null() || !ptr.is_aligned() {
        return None;
    }
    // SAFETY: `ptr` is non-NULL, aligned and writable for one T (caller). All-zero bytes are a
    // valid T (ZeroValid), so the reference that follows points to an initialized value used by
    // nothing else for 'a.
    unsafe {
        ptr.write_bytes(0, 1);
        Some(&mut *ptr)
    }
}

/// The input struct at `ptr`; `None` if NULL or misaligned.
///
/// # Safety
///
/// Unless NULL, `ptr` must point to an initialized `tp_pcrs` not written during `'a`.
pub(crate) unsafe fn in_ref<'a>(ptr: *const tp_pcrs) -> Option<&'a tp_pcrs> {
    if ptr.is_null() || !ptr.is_aligned() {
        return None;
    }
    // SAFETY: non-NULL, aligned, initialized and unchanged for 'a (caller). Any bit pattern is
    // a valid tp_pcrs (integers only).
    Some(unsafe { &*ptr })
}

/// The used banks of a caller's `tp_pcrs`, after checking its counts: `None` if `bank_count`
/// exceeds TP_MAX_BANKS or a bank's `digest_len` exceeds TP_MAX_DIGEST_SIZE.
pub(crate) fn used_banks(p: &tp_pcrs) -> Option<&[tp_pcr_bank]> {
    let banks = p.banks.get(..usize::try_from(p.bank_count).ok()?)?;
    debug_assert!(banks.len() <= TP_MAX_BANKS);
    banks
        .iter()
        .all(|b| usize::from(b.digest_len) <= TP_MAX_DIGEST_SIZE)
        .then_some(banks)
}
