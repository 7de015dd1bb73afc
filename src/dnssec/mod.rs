//! DNSSEC: BIND key files and their timing, the signing set, RRSIGs made
//! when a snapshot is built, compact denial (RFC 9824), and the bounded
//! cache of signatures made on first use. `state` calls this room when it
//! builds a snapshot; `dns` only copies what is here.

pub mod keys;
