//! Credential blobs (`0xBADCC0DE` files, TPM2B_ID_OBJECT) and the software credential check
//! on arbitrary bytes: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustpool_core::credential::{open, CredentialBlob, IdObjectRef, SymDef};
use trustpool_core::HashAlg;

fuzz_target!(|data: &[u8]| {
    let _ = CredentialBlob::parse(data);
    if let Ok(id) = IdObjectRef::parse(data) {
        let name = [0x00, 0x0b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32];
        let _ = open(HashAlg::Sha256, SymDef::AES_128_CFB, &[7u8; 32], &name, &id);
    }
});
