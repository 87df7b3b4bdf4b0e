//! Log filter objects and block log lists, as clients (`newFilter`, `logs` subscriptions)
//! and nodes (`getLogs` results) send them: parsed without panicking, and a parsed filter
//! matches every log of a parsed list without panicking either.
#![no_main]

use kengate::events::filter::{parse_logs, Criteria};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // One input feeds both parsers: "<filter>\n<logs>".
    let (filter, logs) = text.split_once('\n').unwrap_or((text, "[]"));
    let criteria = Criteria::parse(filter);
    if let (Ok(c), Ok(logs)) = (criteria, parse_logs(logs.as_bytes())) {
        for (i, l) in logs.iter().enumerate() {
            let _ = c.matches(i as u64, l);
            let _ = c.check(kengate::methods::Dialect::Kaia);
        }
    }
});
