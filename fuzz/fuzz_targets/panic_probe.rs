#![no_main]
libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    if input.len() >= 2 && input[0] == b'*' && input[1] == b'9' {
        panic!("probe");
    }
});
