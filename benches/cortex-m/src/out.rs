//! Lines to the host's stdout over semihosting, without `core::fmt` (keeps the formatting
//! machinery out of the flash figure).

use cortex_m_semihosting::hio::{self, HostStream};

pub struct Out(Option<HostStream>);

impl Out {
    pub fn new() -> Self {
        Out(hio::hstdout().ok())
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        if let Some(h) = self.0.as_mut() {
            let _ = h.write_all(s.as_bytes());
        }
        self
    }

    pub fn num(&mut self, mut n: u64) -> &mut Self {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        // Only ASCII digits were written.
        self.str(core::str::from_utf8(&buf[i..]).unwrap_or("?"))
    }

    /// `key: value` on one line.
    pub fn kv(&mut self, key: &str, value: &str) {
        self.str(key).str(": ").str(value).str("\n");
    }

    /// `key: n` on one line.
    pub fn kn(&mut self, key: &str, n: u64) {
        self.str(key).str(": ").num(n).str("\n");
    }
}
