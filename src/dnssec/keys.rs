//! BIND key files (stub until the loader lands).
#![allow(missing_docs, dead_code, unused_variables)]

use std::sync::Arc;

use hickory_proto::dnssec::SigningKey;
use hickory_proto::dnssec::rdata::{DNSKEY, DS};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    pub created: Option<i64>,
    pub publish: Option<i64>,
    pub activate: Option<i64>,
    pub inactive: Option<i64>,
    pub delete: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Future,
    Published,
    Active,
    Inactive,
    Deleted,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        "active"
    }
    pub fn published(self) -> bool {
        true
    }
    pub fn signs(self) -> bool {
        true
    }
}

pub struct Key {
    pub file: String,
    pub zone: String,
    pub tag: u16,
    pub algorithm: u8,
    pub flags: u16,
    pub dnskey: DNSKEY,
    pub signer: Arc<dyn SigningKey>,
    pub timing: Timing,
}

impl Key {
    pub fn is_sep(&self) -> bool {
        self.flags & 1 == 1
    }
    pub fn state(&self, now: i64) -> KeyState {
        KeyState::Active
    }
    pub fn next_event(&self, now: i64) -> Option<i64> {
        None
    }
    pub fn ds_sha256(&self) -> Result<String, String> {
        Err("stub".into())
    }
    pub fn ds_sha256_rdata(&self) -> Result<DS, String> {
        Err("stub".into())
    }
    pub fn algorithm_name(&self) -> &'static str {
        "stub"
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.tag)
    }
}

pub fn load(path: &std::path::Path, display: &str, zone: &str) -> Result<Key, String> {
    Err("stub".into())
}
