//! libFuzzer entry point; the body is shared with the regression replay test
//! (tests/it/fuzz_replay.rs) through `om_gateway_fuzz::targets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| om_gateway_fuzz::targets::original_url(data));
