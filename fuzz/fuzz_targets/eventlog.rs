//! TCG event log parser, every decoder, the consistency check, the summary and replay, on
//! arbitrary bytes: errors, never panics.
#![no_main]
use core::fmt::Write;
use libfuzzer_sys::fuzz_target;
use trustpool_core::eventlog::{check_event, decode, BootSummary, EventData, EventLog, RawEvents, Replay, ALL_PCRS};

struct Sink(usize);
impl Write for Sink {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    for ev in RawEvents::new(data).take(10_000) {
        if ev.is_err() {
            break;
        }
    }
    let Ok(log) = EventLog::parse(data) else { return };
    let mut sink = Sink(0);
    for ev in log.events() {
        let _ = check_event(&ev);
        match decode(&ev, log.uintn_bytes()) {
            EventData::ImageLoad(i) => {
                let _ = write!(sink, "{}", i.device_path);
            }
            EventData::Variable(v) => {
                for l in v.signature_lists().flatten() {
                    let _ = l.signatures().count();
                }
                let _ = v.boot_order().map(|o| o.count());
                let _ = v.load_option().map(|o| write!(sink, "{}", o.file_path));
            }
            EventData::Gpt(g) => {
                let _ = g.partitions().count();
            }
            other => {
                let _ = write!(sink, "{other:?}");
            }
        }
    }
    let _ = BootSummary::from_log(&log);
    let _ = Replay::for_log(&log, ALL_PCRS);
});
