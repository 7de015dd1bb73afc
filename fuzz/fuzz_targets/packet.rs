//! Packet → response: the function every UDP and TCP query goes through
//! (`dns::answer::respond`), on the demo configuration (signpost.toml, its
//! zone and GeoIP database), with the health and load of the endpoints,
//! the client address and the transport varied by a hash of the input;
//! then the rate limiter's accounting and slip on the response.
//!
//! `cargo +nightly fuzz run packet fuzz/seeds/packet` (see docs/operations.md).

#![no_main]

#[path = "respond.rs"]
mod respond;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| respond::run(respond::world(false), data, false));
