//! BIND key files: one DNSSEC key is a pair `K<zone>+<alg>+<tag>.key` (the
//! DNSKEY record) and `K<zone>+<alg>+<tag>.private` (the private key and,
//! from `dnssec-keygen`/`dnssec-settime`, its timing points). ldns-keygen
//! writes the same format without timing.
//!
//! signpost signs with algorithms 13 (ECDSAP256SHA256) and 15 (ED25519);
//! the key material goes to ring, the DNSKEY, key tag and DS come from
//! hickory-proto. Nothing here panics on what a file holds: every defect is
//! an `Err(String)` that says what and where (the caller prefixes the key's
//! name as the configuration wrote it).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::rdata::{DNSKEY, DS};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKeyBuf, SigningKey};
use hickory_proto::rr::Name;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};

/// DNSKEY flags: the zone key bit (RFC 4034 §2.1.1).
const FLAG_ZONE: u16 = 0x0100;
/// DNSKEY flags: the REVOKE bit (RFC 5011 §3).
const FLAG_REVOKE: u16 = 0x0080;
/// DNSKEY flags: the secure entry point bit (RFC 4034 §2.1.1).
const FLAG_SEP: u16 = 0x0001;

/// The largest key file read: BIND's are a few hundred bytes.
const MAX_FILE: u64 = 64 * 1024;

/// Algorithm 13's number.
const ALG_ECDSAP256: u8 = 13;
/// Algorithm 15's number.
const ALG_ED25519: u8 = 15;

/// When a key's timing points fall (unix seconds), from the BIND .private file.
///
/// `None` is a point the file does not set (absent, or written as `0`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// `Created:` when the key was made (informational; changes no state).
    pub created: Option<i64>,
    /// `Publish:` from when the DNSKEY is in the zone.
    pub publish: Option<i64>,
    /// `Activate:` from when the key signs.
    pub activate: Option<i64>,
    /// `Inactive:` from when the key no longer signs (still published).
    pub inactive: Option<i64>,
    /// `Delete:` from when the DNSKEY is no longer published.
    pub delete: Option<i64>,
}

impl Timing {
    /// Whether no point that changes state (publish, activate, inactive,
    /// delete) is set: ldns-keygen's keys, or BIND's with `-P none -A none`.
    pub fn is_unset(&self) -> bool {
        self.publish.is_none()
            && self.activate.is_none()
            && self.inactive.is_none()
            && self.delete.is_none()
    }

    /// The key's state at `now` (unix seconds), by BIND's rules: Delete
    /// ends everything, Inactive ends signing, Activate starts signing (and
    /// implies publication), Publish (or Activate when Publish is unset)
    /// starts publication. With neither Publish nor Activate the key has
    /// been published and active since always.
    pub fn state(&self, now: i64) -> KeyState {
        if self.delete.is_some_and(|t| now >= t) {
            return KeyState::Deleted;
        }
        if self.inactive.is_some_and(|t| now >= t) {
            return KeyState::Inactive;
        }
        match (self.publish, self.activate) {
            (None, None) => KeyState::Active,
            (_, Some(a)) if now >= a => KeyState::Active,
            (p, a) => match p.or(a) {
                Some(p) if now >= p => KeyState::Published,
                _ => KeyState::Future,
            },
        }
    }

    /// The first point that changes state (publish, activate, inactive,
    /// delete) strictly after `now`, if any. `Created` is not one.
    pub fn next_event(&self, now: i64) -> Option<i64> {
        [self.publish, self.activate, self.inactive, self.delete]
            .into_iter()
            .flatten()
            .filter(|&t| t > now)
            .min()
    }
}

/// Where a key stands at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Not yet published.
    Future,
    /// In the DNSKEY RRset, not signing.
    Published,
    /// Published and signing.
    Active,
    /// Retired: still published, no longer signing.
    Inactive,
    /// Past Delete: neither published nor signing.
    Deleted,
}

impl KeyState {
    /// The state's name: "future", "published", "active", "inactive", "deleted".
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Future => "future",
            KeyState::Published => "published",
            KeyState::Active => "active",
            KeyState::Inactive => "inactive",
            KeyState::Deleted => "deleted",
        }
    }

    /// Whether the key's DNSKEY is in the zone in this state.
    pub fn published(self) -> bool {
        matches!(
            self,
            KeyState::Published | KeyState::Active | KeyState::Inactive
        )
    }

    /// Whether the key makes signatures in this state.
    pub fn signs(self) -> bool {
        self == KeyState::Active
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One loaded DNSSEC key: its DNSKEY, a signer over its private key, and
/// its timing.
#[derive(Clone)]
pub struct Key {
    /// The path as written in the configuration (for messages).
    pub file: String,
    /// The zone: the .key file's owner, lowercase, with a trailing dot.
    pub zone: String,
    /// The key tag (RFC 4034 Appendix B) of [`Key::dnskey`].
    pub tag: u16,
    /// The DNSSEC algorithm number: 13 or 15.
    pub algorithm: u8,
    /// The DNSKEY flags: 256 (ZSK) or 257 (SEP: KSK or CSK).
    pub flags: u16,
    /// The DNSKEY record data, as the .key file has it.
    pub dnskey: DNSKEY,
    /// Signs with the private key (checked to match [`Key::dnskey`]).
    pub signer: Arc<dyn SigningKey>,
    /// The timing points from the .private file.
    pub timing: Timing,
}

impl Key {
    /// Whether the SEP flag is set (a KSK or CSK: the DS points at it).
    pub fn is_sep(&self) -> bool {
        self.flags & FLAG_SEP != 0
    }

    /// The key's state at `now` (unix seconds); see [`Timing::state`].
    pub fn state(&self, now: i64) -> KeyState {
        self.timing.state(now)
    }

    /// The first timing point strictly after `now`, if any; see
    /// [`Timing::next_event`].
    pub fn next_event(&self, now: i64) -> Option<i64> {
        self.timing.next_event(now)
    }

    /// DS (digest type 2, SHA-256) in presentation form: "TAG ALG 2 HEXUPPER" for the zone apex.
    pub fn ds_sha256(&self) -> Result<String, String> {
        Ok(self.ds_sha256_rdata()?.to_string())
    }

    /// DS rdata wire (for CDS), digest type 2.
    pub fn ds_sha256_rdata(&self) -> Result<DS, String> {
        let name = Name::from_ascii(&self.zone)
            .map_err(|e| format!("zone {} is not a domain name: {e}", self.zone))?;
        let digest = self
            .dnskey
            .to_digest(&name, DigestType::SHA256)
            .map_err(|e| format!("cannot digest the DNSKEY of {}: {e}", self.zone))?;
        Ok(DS::new(
            self.tag,
            Algorithm::from_u8(self.algorithm),
            DigestType::SHA256,
            digest.as_ref().to_vec(),
        ))
    }

    /// A short mnemonic: "ECDSAP256SHA256" / "ED25519".
    pub fn algorithm_name(&self) -> &'static str {
        algorithm_mnemonic(self.algorithm)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("file", &self.file)
            .field("zone", &self.zone)
            .field("tag", &self.tag)
            .field("algorithm", &self.algorithm)
            .field("flags", &self.flags)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

/// Loads one key. `path` is resolved (absolute or relative to cwd), `display` is how the config wrote it,
/// `zone` is the zone it must belong to (lowercase fqdn with trailing dot).
///
/// `path` may name the `.key` file, the `.private` file or their common
/// base (`Kexample.test.+013+12345`); both files are read. The private key
/// must match the DNSKEY's public key, the key must be a zone key (flags
/// 256 or 257, not revoked) of algorithm 13 or 15, and its owner must be
/// `zone`.
pub fn load(path: &Path, display: &str, zone: &str) -> Result<Key, String> {
    let (key_path, private_path) = pair_paths(path);
    let key_name = file_name(&key_path);
    let private_name = file_name(&private_path);

    let key_text = read_text(&key_path)?;
    let public = parse_key_file(&key_text).map_err(|e| format!("{key_name}: {e}"))?;

    let want = normalise_zone(zone);
    if public.owner != want {
        return Err(format!(
            "{key_name}: belongs to zone {}, not {want}",
            public.owner
        ));
    }

    let private_text = read_text(&private_path)?;
    let private = parse_private_file(&private_text).map_err(|e| format!("{private_name}: {e}"))?;
    if private.algorithm != public.algorithm {
        return Err(format!(
            "{private_name}: algorithm {} ({}) does not match algorithm {} ({}) in {key_name}",
            private.algorithm,
            algorithm_mnemonic(private.algorithm),
            public.algorithm,
            algorithm_mnemonic(public.algorithm),
        ));
    }

    let signer = make_signer(public.algorithm, &private.key, &public.key, &key_name)
        .map_err(|e| format!("{private_name}: {e}"))?;

    let hickory_alg = Algorithm::from_u8(public.algorithm);
    let dnskey = DNSKEY::with_flags(public.flags, PublicKeyBuf::new(public.key, hickory_alg));
    let tag = dnskey
        .calculate_key_tag()
        .map_err(|e| format!("{key_name}: cannot compute the key tag: {e}"))?;

    Ok(Key {
        file: display.to_string(),
        zone: public.owner,
        tag,
        algorithm: public.algorithm,
        flags: public.flags,
        dnskey,
        signer,
        timing: private.timing,
    })
}

/// The `.key` and `.private` paths for a path naming either or their base.
fn pair_paths(path: &Path) -> (PathBuf, PathBuf) {
    let base: OsString = match path.extension().and_then(|e| e.to_str()) {
        Some("key" | "private") => path.with_extension("").into_os_string(),
        // The base name's own "extension" is "+013+12345": append, never replace.
        _ => path.as_os_str().to_os_string(),
    };
    let mut key = base.clone();
    key.push(".key");
    let mut private = base;
    private.push(".private");
    (PathBuf::from(key), PathBuf::from(private))
}

/// The last component of `path`, for messages.
fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// Reads one key file as text; errors name the file.
fn read_text(path: &Path) -> Result<String, String> {
    let name = file_name(path);
    let describe = |e: std::io::Error| -> String {
        let what = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        format!("{name}: {what}")
    };
    let meta = std::fs::metadata(path).map_err(describe)?;
    if meta.is_file() && meta.len() > MAX_FILE {
        return Err(format!(
            "{name}: {} bytes is too large for a key file (at most {MAX_FILE})",
            meta.len()
        ));
    }
    crate::os::read_input_text(path).map_err(describe)
}

/// Lowercase, with a trailing dot.
fn normalise_zone(name: &str) -> String {
    let mut s = name.to_ascii_lowercase();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// The mnemonic of a DNSSEC algorithm number (RFC 8624's table).
fn algorithm_mnemonic(alg: u8) -> &'static str {
    match alg {
        1 => "RSAMD5",
        3 => "DSA",
        5 => "RSASHA1",
        6 => "DSA-NSEC3-SHA1",
        7 => "RSASHA1-NSEC3-SHA1",
        8 => "RSASHA256",
        10 => "RSASHA512",
        12 => "ECC-GOST",
        13 => "ECDSAP256SHA256",
        14 => "ECDSAP384SHA384",
        15 => "ED25519",
        16 => "ED448",
        _ => "unknown",
    }
}

/// Refuses every algorithm signpost does not sign with.
fn check_algorithm(alg: u8) -> Result<(), String> {
    if alg == ALG_ECDSAP256 || alg == ALG_ED25519 {
        Ok(())
    } else {
        Err(format!(
            "algorithm {alg} ({}) is not supported: signpost signs with 13 (ECDSAP256SHA256) and 15 (ED25519)",
            algorithm_mnemonic(alg)
        ))
    }
}

/// What the .key file says.
#[derive(Debug)]
struct PublicPart {
    owner: String,
    flags: u16,
    algorithm: u8,
    /// The DNSKEY public key field: x||y (64 bytes) or the Ed25519 key (32).
    key: Vec<u8>,
}

/// Parses a .key file: `;` comments, then one DNSKEY record
/// `owner [ttl] [class] DNSKEY flags 3 alg base64...`.
fn parse_key_file(text: &str) -> Result<PublicPart, String> {
    // Drop comments (BIND's header, ldns' trailing `;{id = ...}`).
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split(';').next().unwrap_or("")))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let Some(&(line_no, first)) = lines.first() else {
        return Err("no DNSKEY record (the file holds only comments or nothing)".to_string());
    };
    let grouped = lines.iter().any(|(_, l)| l.contains('('));
    if lines.len() > 1 && !grouped {
        return Err(format!(
            "line {}: a second record; a .key file holds one DNSKEY record",
            lines[1].0
        ));
    }
    if first.starts_with(char::is_whitespace) {
        return Err(format!(
            "line {line_no}: the record has no owner name (it starts with blank space)"
        ));
    }
    let tokens: Vec<&str> = lines
        .iter()
        .flat_map(|(_, l)| l.split_whitespace())
        .flat_map(|t| t.split(['(', ')']))
        .filter(|t| !t.is_empty())
        .collect();

    let Some(type_at) = tokens.iter().position(|t| t.eq_ignore_ascii_case("DNSKEY")) else {
        return Err(format!(
            "line {line_no}: not a DNSKEY record (no DNSKEY type in \"{}\")",
            shorten(first.trim())
        ));
    };
    if tokens[type_at + 1..]
        .iter()
        .any(|t| t.eq_ignore_ascii_case("DNSKEY"))
    {
        return Err("a second DNSKEY record; a .key file holds one DNSKEY record".to_string());
    }
    if type_at == 0 {
        return Err(format!("line {line_no}: the record has no owner name"));
    }
    let owner = normalise_zone(tokens[0]);
    for t in &tokens[1..type_at] {
        let is_ttl = t.bytes().all(|b| b.is_ascii_digit());
        if !is_ttl && !t.eq_ignore_ascii_case("IN") {
            return Err(format!(
                "line {line_no}: unexpected \"{}\" between the owner and DNSKEY (expected a TTL or IN)",
                shorten(t)
            ));
        }
    }

    let mut rdata = tokens[type_at + 1..].iter();
    let flags_text = rdata
        .next()
        .ok_or_else(|| format!("line {line_no}: the DNSKEY has no flags"))?;
    let flags: u16 = flags_text.parse().map_err(|_| {
        format!(
            "line {line_no}: flags \"{}\" is not a number",
            shorten(flags_text)
        )
    })?;
    let protocol = rdata
        .next()
        .ok_or_else(|| format!("line {line_no}: the DNSKEY has no protocol"))?;
    if *protocol != "3" {
        return Err(format!(
            "line {line_no}: protocol \"{}\": a DNSKEY's protocol is 3",
            shorten(protocol)
        ));
    }
    let alg_text = rdata
        .next()
        .ok_or_else(|| format!("line {line_no}: the DNSKEY has no algorithm"))?;
    let algorithm: u8 = alg_text.parse().map_err(|_| {
        format!(
            "line {line_no}: algorithm \"{}\" is not a number",
            shorten(alg_text)
        )
    })?;

    if flags & FLAG_REVOKE != 0 {
        return Err(format!(
            "flags {flags}: the REVOKE bit (128) is set: a revoked key does not sign"
        ));
    }
    if flags & FLAG_ZONE == 0 {
        return Err(format!("flags {flags}: not a zone key"));
    }
    if flags != FLAG_ZONE && flags != FLAG_ZONE | FLAG_SEP {
        return Err(format!(
            "flags {flags}: signpost accepts 256 (ZSK) and 257 (KSK/CSK)"
        ));
    }
    check_algorithm(algorithm)?;

    let b64: String = rdata.copied().collect();
    if b64.is_empty() {
        return Err(format!("line {line_no}: the DNSKEY has no public key"));
    }
    let key = data_encoding::BASE64
        .decode(b64.as_bytes())
        .map_err(|e| format!("line {line_no}: the public key is not valid base64 ({e})"))?;
    let want = if algorithm == ALG_ECDSAP256 { 64 } else { 32 };
    if key.len() != want {
        return Err(format!(
            "line {line_no}: the public key is {} bytes; {} keys are {want}",
            key.len(),
            algorithm_mnemonic(algorithm)
        ));
    }
    Ok(PublicPart {
        owner,
        flags,
        algorithm,
        key,
    })
}

/// What the .private file says.
struct PrivatePart {
    algorithm: u8,
    /// The private key: the ECDSA scalar (left-padded to 32 bytes) or the
    /// Ed25519 seed.
    key: Vec<u8>,
    timing: Timing,
}

impl fmt::Debug for PrivatePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivatePart")
            .field("algorithm", &self.algorithm)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

/// Parses a .private file: `Field: value` lines; unknown fields ignored.
fn parse_private_file(text: &str) -> Result<PrivatePart, String> {
    let mut format_seen = false;
    let mut algorithm: Option<u8> = None;
    let mut key_b64: Option<(usize, &str)> = None;
    let mut timing = Timing::default();

    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((field, value)) = line.split_once(':') else {
            if !format_seen {
                return Err(format!(
                    "line {line_no}: not a BIND private key file (expected \"Private-key-format: v1.x\")"
                ));
            }
            return Err(format!(
                "line {line_no}: \"{}\" is not a \"Field: value\" line",
                shorten(line)
            ));
        };
        let field = field.trim();
        let value = value.trim();
        if !format_seen {
            if !field.eq_ignore_ascii_case("Private-key-format") {
                return Err(format!(
                    "line {line_no}: not a BIND private key file (expected \"Private-key-format: v1.x\", found \"{}\")",
                    shorten(field)
                ));
            }
            check_format_version(value).map_err(|e| format!("line {line_no}: {e}"))?;
            format_seen = true;
            continue;
        }
        let lower = field.to_ascii_lowercase();
        match lower.as_str() {
            "private-key-format" => {
                return Err(format!("line {line_no}: a second Private-key-format line"));
            }
            "algorithm" => {
                if algorithm.is_some() {
                    return Err(format!("line {line_no}: a second Algorithm line"));
                }
                let number = value.split_whitespace().next().unwrap_or("");
                let alg: u8 = number.parse().map_err(|_| {
                    format!(
                        "line {line_no}: Algorithm \"{}\" does not start with a number",
                        shorten(value)
                    )
                })?;
                check_algorithm(alg)?;
                algorithm = Some(alg);
            }
            "privatekey" => {
                if key_b64.is_some() {
                    return Err(format!("line {line_no}: a second PrivateKey line"));
                }
                key_b64 = Some((line_no, value));
            }
            "created" | "publish" | "activate" | "inactive" | "delete" => {
                let slot = match lower.as_str() {
                    "created" => &mut timing.created,
                    "publish" => &mut timing.publish,
                    "activate" => &mut timing.activate,
                    "inactive" => &mut timing.inactive,
                    _ => &mut timing.delete,
                };
                if slot.is_some() {
                    return Err(format!("line {line_no}: a second {field} line"));
                }
                *slot = parse_time(value).map_err(|e| format!("line {line_no}: {field}: {e}"))?;
            }
            // Modulus, PublicExponent (RSA), Revoke, SyncPublish, Successor,
            // Predecessor, Lifetime, KSK/ZSK, Engine, Label...: not ours.
            _ => {}
        }
    }

    if !format_seen {
        return Err(
            "empty: not a BIND private key file (expected \"Private-key-format: v1.x\")"
                .to_string(),
        );
    }
    let algorithm = algorithm.ok_or("no Algorithm line")?;
    let (line_no, b64) = key_b64.ok_or("no PrivateKey line")?;
    let raw = data_encoding::BASE64
        .decode(b64.as_bytes())
        .map_err(|e| format!("line {line_no}: PrivateKey is not valid base64 ({e})"))?;
    let key = if algorithm == ALG_ECDSAP256 {
        // ldns writes the scalar with OpenSSL's BN_bn2bin, which drops
        // leading zero bytes (one key in 256 has 31 bytes): pad it back.
        if raw.is_empty() || raw.len() > 32 {
            return Err(format!(
                "line {line_no}: PrivateKey is {} bytes; an ECDSAP256SHA256 private key is 32",
                raw.len()
            ));
        }
        let mut padded = vec![0u8; 32 - raw.len()];
        padded.extend_from_slice(&raw);
        padded
    } else {
        if raw.len() != 32 {
            return Err(format!(
                "line {line_no}: PrivateKey is {} bytes; an ED25519 private key is 32",
                raw.len()
            ));
        }
        raw
    };
    Ok(PrivatePart {
        algorithm,
        key,
        timing,
    })
}

/// Accepts `v1.N` (BIND writes v1.3, ldns v1.2; BIND reads any v1.x).
fn check_format_version(value: &str) -> Result<(), String> {
    let minor = value
        .strip_prefix("v1.")
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
    if minor.is_none() {
        return Err(format!(
            "Private-key-format \"{}\" is not supported (v1.x is)",
            shorten(value)
        ));
    }
    Ok(())
}

/// Builds the signer and checks the private key against the public one
/// (ring refuses a pair whose public key is not the private key's).
/// `key_name` is the .key file's name, for messages.
fn make_signer(
    alg: u8,
    private: &[u8],
    public: &[u8],
    key_name: &str,
) -> Result<Arc<dyn SigningKey>, String> {
    let explain = |e: ring::error::KeyRejected| -> String {
        match e.to_string().as_str() {
            "InconsistentComponents" => {
                format!("the private key does not match the public key in {key_name}")
            }
            "InvalidComponent" => format!(
                "the private key is not a valid {} key",
                algorithm_mnemonic(alg)
            ),
            other => format!("the key pair is refused: {other}"),
        }
    };
    if alg == ALG_ECDSAP256 {
        let mut point = Vec::with_capacity(1 + public.len());
        point.push(0x04); // uncompressed SEC1 point; DNSKEY stores x||y
        point.extend_from_slice(public);
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            private,
            &point,
            &SystemRandom::new(),
        )
        .map_err(explain)?;
        Ok(Arc::new(EcdsaSigningKey::from_ecdsa(
            pair,
            Algorithm::ECDSAP256SHA256,
        )))
    } else if alg == ALG_ED25519 {
        let pair = Ed25519KeyPair::from_seed_and_public_key(private, public).map_err(explain)?;
        Ok(Arc::new(Ed25519SigningKey::from_ed25519(pair)))
    } else {
        check_algorithm(alg)?;
        Err(format!("algorithm {alg} has no signer"))
    }
}

/// Parses a BIND time `YYYYMMDDHHMMSS` (UTC) to unix seconds; `0` is unset.
fn parse_time(value: &str) -> Result<Option<i64>, String> {
    if value == "0" {
        return Ok(None);
    }
    let b = value.as_bytes();
    if b.len() != 14 || !b.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "\"{}\" is not a time (YYYYMMDDHHMMSS, UTC)",
            shorten(value)
        ));
    }
    let num = |from: usize, to: usize| -> i64 {
        b[from..to]
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
    };
    let (year, month, day) = (num(0, 4), num(4, 6), num(6, 8));
    let (hour, minute, second) = (num(8, 10), num(10, 12), num(12, 14));
    let bad = |what: &str| format!("\"{value}\" is not a time: {what}");
    if !(1..=12).contains(&month) {
        return Err(bad("no month 1-12"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such day in that month"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad("no such time of day"));
    }
    let days = days_from_civil(year, month, day);
    Ok(Some(days * 86_400 + hour * 3_600 + minute * 60 + second))
}

/// The days of `month` (1-12) in `year` (proleptic Gregorian).
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// At most 40 characters of file text, for messages.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests;
