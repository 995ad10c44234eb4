//! libFuzzer entry point; the checks live in `../harness/walk_reply.rs`, shared with the
//! regression replay in `tests/security_malformed.rs`.

#![no_main]

#[path = "../harness/walk_reply.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|input: &[u8]| harness::run(input));
