//! libFuzzer entry point; the checks live in `../harness/scan_request.rs`, shared with the
//! regression replay in `tests/security_malformed.rs`.

#![no_main]

#[path = "../harness/scan_request.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|input: &[u8]| harness::run(input));
