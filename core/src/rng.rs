//! Caller-supplied randomness for the RSA crate's encoders: the core has no RNG of its own.
#![cfg(feature = "rsa")]

use core::fmt;

use rsa::rand_core::{TryCryptoRng, TryRng};

/// Bytes handed to an encoder (e.g. the OAEP seed) as its random source, exactly once: asking
/// for more than was given is an error, and [`FixedRandom::is_exhausted`] tells whether all
/// of it was used.
pub(crate) struct FixedRandom<'a>(&'a [u8]);

impl<'a> FixedRandom<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        FixedRandom(bytes)
    }

    pub(crate) fn is_exhausted(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug)]
pub(crate) struct Exhausted;

impl fmt::Display for Exhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("caller-supplied randomness exhausted")
    }
}

impl core::error::Error for Exhausted {}

impl TryRng for FixedRandom<'_> {
    type Error = Exhausted;

    fn try_next_u32(&mut self) -> Result<u32, Exhausted> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Exhausted> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Exhausted> {
        let (head, tail) = self.0.split_at_checked(dst.len()).ok_or(Exhausted)?;
        dst.copy_from_slice(head);
        self.0 = tail;
        Ok(())
    }
}

impl TryCryptoRng for FixedRandom<'_> {}
