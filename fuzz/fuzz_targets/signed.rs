//! Packet → signed response: `dns::answer::respond` on the demo
//! configuration with its zone signed (an ECDSA KSK and ZSK from
//! tests/data/dnssec), so queries with the DO bit take the signing paths:
//! RRSIGs copied from the snapshot, compact denial and wildcard
//! expansions signed on first use into the worker's cache. Health, client
//! address and transport vary with a hash of the input as in `packet`;
//! every response must also parse with hickory-proto whenever the query
//! did.
//!
//! `cargo +nightly fuzz run signed fuzz/seeds/signed` (see docs/operations.md).

#![no_main]

#[path = "respond.rs"]
mod respond;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| respond::run(respond::world(true), data, true));
