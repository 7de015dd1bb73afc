//! RFC 1035 zone files through hickory-proto's text parser, with errors
//! that name the file and the line.

use std::path::Path;

use hickory_proto::rr::{Name, RData, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::txt::Parser;

use super::ZoneError;

/// One RRset read from a zone file.
#[derive(Debug, Clone)]
pub struct ParsedRRset {
    /// Owner name (case as written).
    pub name: Name,
    /// Record type.
    pub rtype: RecordType,
    /// TTL (the lowest of the set, RFC 2181 §5.2).
    pub ttl: u32,
    /// Record data.
    pub rdatas: Vec<RData>,
}

/// Reads a zone file for `origin`.
pub fn parse_file(path: &Path, display: &str, origin: &str) -> Result<Vec<ParsedRRset>, ZoneError> {
    let text = crate::os::read_input_text(path)
        .map_err(|e| ZoneError::new(display, None, format!("cannot read: {e}")))?;
    parse_text(&text, Some(path), display, origin)
}

/// Parses zone-file text for `origin`; `path` resolves `$INCLUDE`.
pub fn parse_text(
    text: &str,
    path: Option<&Path>,
    display: &str,
    origin: &str,
) -> Result<Vec<ParsedRRset>, ZoneError> {
    let origin_name = Name::from_ascii(origin)
        .map_err(|e| ZoneError::new(display, None, format!("bad origin {origin}: {e}")))?;
    let run =
        |t: &str| Parser::new(t, path.map(Path::to_path_buf), Some(origin_name.clone())).parse();
    let records = match run(text) {
        Ok((_, records)) => records,
        Err(e) => {
            let line = failing_line(text, |prefix| run(prefix).is_ok());
            return Err(ZoneError::new(display, Some(line), e.to_string()));
        }
    };
    // the parser keeps the last of several CNAMEs at one name silently
    if let Some(d) = duplicate_cname(text, origin) {
        return Err(ZoneError::new(
            display,
            Some(d.second),
            format!(
                "{} CNAME: a second CNAME record (the first is on line {}); a name can have only one",
                d.owner, d.first
            ),
        ));
    }
    let mut out = Vec::with_capacity(records.len());
    for (RrKey { .. }, set) in records {
        out.push(from_set(set));
    }
    Ok(out)
}

/// The first bytes of a zone copy in wire form ([`write_wire`]).
pub const WIRE_MAGIC: &[u8] = b"signpost zone copy, wire format 1\n";

/// A zone's records in wire form (each record whole, names uncompressed),
/// after [`WIRE_MAGIC`]: how a zone transferred from a primary is kept on
/// disk, so that it reads back exactly as it came.
pub fn write_wire(records: &[hickory_proto::rr::Record]) -> Result<Vec<u8>, String> {
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
    let mut out = WIRE_MAGIC.to_vec();
    for r in records {
        let mut buf = Vec::new();
        let mut enc = BinEncoder::new(&mut buf);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        r.emit(&mut enc)
            .map_err(|e| format!("{} {}: {e}", r.name, r.record_type()))?;
        out.extend_from_slice(&buf);
    }
    Ok(out)
}

/// Reads a zone copy written by [`write_wire`]; records outside `origin`
/// are kept (the table refuses them, naming them).
pub fn parse_wire(bytes: &[u8], display: &str) -> Result<Vec<ParsedRRset>, ZoneError> {
    use hickory_proto::rr::Record;
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    let body = bytes
        .strip_prefix(WIRE_MAGIC)
        .ok_or_else(|| ZoneError::new(display, None, "not a signpost zone copy"))?;
    let mut d = BinDecoder::new(body);
    let mut sets: Vec<ParsedRRset> = Vec::new();
    let mut index: std::collections::HashMap<(Name, RecordType), usize> =
        std::collections::HashMap::new();
    while !d.is_empty() {
        let r = Record::read(&mut d)
            .map_err(|e| ZoneError::new(display, None, format!("a damaged record: {e}")))?;
        let key = (r.name.to_lowercase(), r.record_type());
        match index.get(&key) {
            Some(&i) => {
                let set = &mut sets[i];
                set.ttl = set.ttl.min(r.ttl);
                set.rdatas.push(r.data);
            }
            None => {
                index.insert(key, sets.len());
                sets.push(ParsedRRset {
                    name: r.name.clone(),
                    rtype: r.record_type(),
                    ttl: r.ttl,
                    rdatas: vec![r.data],
                });
            }
        }
    }
    Ok(sets)
}

fn from_set(set: RecordSet) -> ParsedRRset {
    let rtype = set.record_type();
    let mut ttl = u32::MAX;
    let mut rdatas = Vec::new();
    let name = set.name().clone();
    for r in set.records_without_rrsigs() {
        ttl = ttl.min(r.ttl);
        rdatas.push(r.data.clone());
    }
    if rdatas.is_empty() {
        ttl = set.ttl();
    }
    ParsedRRset {
        name,
        rtype,
        ttl,
        rdatas,
    }
}

/// Finds the line of the statement that makes the parse fail: the parser
/// does not report positions, so parse growing prefixes that end at
/// statement boundaries (binary search; a failure in a prefix stays a
/// failure in every longer one) and report where the first failing
/// statement starts.
fn failing_line(text: &str, ok: impl Fn(&str) -> bool) -> usize {
    // (byte offset just after the statement, line where it starts)
    let mut stmts: Vec<(usize, usize)> = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut comment) = (0i32, false, false, false);
    let mut line = 1;
    let mut start_line = 1;
    let mut blank = true;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            line += 1;
            comment = false;
            escaped = false;
            if depth <= 0 && !quoted {
                if !blank {
                    stmts.push((i + 1, start_line));
                }
                start_line = line;
                blank = true;
                depth = 0;
            }
            continue;
        }
        if comment {
            continue;
        }
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' => escaped = true,
            b'"' => quoted = !quoted,
            b';' if !quoted => comment = true,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            _ => {}
        }
        if !b.is_ascii_whitespace() && !comment {
            blank = false;
        }
    }
    if !blank {
        stmts.push((text.len(), start_line));
    }
    let (mut lo, mut hi) = (0usize, stmts.len());
    // invariant: prefixes ending at stmts[..lo] parse; the answer is in lo..hi
    while lo < hi {
        let mid = (lo + hi) / 2;
        if ok(&text[..stmts[mid].0]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    stmts.get(lo).or(stmts.last()).map_or(1, |s| s.1)
}

/// Two CNAME records with different targets at one owner name.
#[derive(Debug, PartialEq, Eq)]
struct DuplicateCname {
    owner: String,
    first: usize,
    second: usize,
}

/// Finds two CNAMEs at one name in zone text that the parser accepted
/// (so it is well formed): a light scan of statements that follows owner
/// names, `@`, `$ORIGIN` and blank owners (the previous one). Records of
/// `$INCLUDE`d files are not scanned.
fn duplicate_cname(text: &str, origin: &str) -> Option<DuplicateCname> {
    let absolute = |name: &str, origin: &str| -> String {
        let n = name.to_ascii_lowercase();
        if n == "@" {
            origin.to_ascii_lowercase()
        } else if n.ends_with('.') {
            n
        } else if origin == "." {
            format!("{n}.")
        } else {
            format!("{n}.{}", origin.to_ascii_lowercase())
        }
    };
    let mut origin = absolute(origin, ".");
    let mut owner = origin.clone();
    // owner -> (target, line)
    let mut seen: std::collections::HashMap<String, (String, usize)> = Default::default();
    for (line, starts_blank, tokens) in statements(text) {
        let Some(first) = tokens.first() else {
            continue;
        };
        if first.eq_ignore_ascii_case("$ORIGIN") {
            if let Some(o) = tokens.get(1) {
                origin = absolute(o, &origin);
            }
            continue;
        }
        if first.starts_with('$') {
            continue;
        }
        let mut rest = &tokens[..];
        if !starts_blank {
            owner = absolute(first, &origin);
            rest = &tokens[1..];
        }
        // [ttl] [class] type, in either order
        let is_class = |t: &str| {
            let u = t.to_ascii_uppercase();
            matches!(u.as_str(), "IN" | "CH" | "HS" | "CS") || u.starts_with("CLASS")
        };
        let mut i = 0;
        while i < rest.len()
            && i < 2
            && (rest[i].starts_with(|c: char| c.is_ascii_digit()) || is_class(&rest[i]))
        {
            i += 1;
        }
        if rest.get(i).is_some_and(|t| t.eq_ignore_ascii_case("CNAME"))
            && let Some(target) = rest.get(i + 1)
        {
            let target = absolute(target, &origin);
            match seen.get(&owner) {
                Some((t, first)) if *t != target => {
                    return Some(DuplicateCname {
                        owner,
                        first: *first,
                        second: line,
                    });
                }
                Some(_) => {}
                None => {
                    seen.insert(owner.clone(), (target, line));
                }
            }
        }
    }
    None
}

/// Splits zone text into statements (a line, or lines joined by
/// parentheses), without comments: (line it starts on, whether it starts
/// with blank space, tokens). Quoted strings are one token.
fn statements(text: &str) -> Vec<(usize, bool, Vec<String>)> {
    let mut out = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut quoted, mut escaped, mut comment) = (0i32, false, false, false);
    let mut line = 1;
    let mut start_line = 1;
    // at the first character of a statement, which says whether it
    // starts with blank space (then its owner is the previous one)
    let mut fresh = true;
    let mut starts_blank = false;
    for c in text.chars() {
        if fresh && c != '\n' {
            starts_blank = c == ' ' || c == '\t';
            fresh = false;
        }
        if c == '\n' {
            comment = false;
            escaped = false;
            if !quoted && !cur.is_empty() {
                tokens.push(std::mem::take(&mut cur));
            }
            line += 1;
            if depth <= 0 && !quoted {
                if !tokens.is_empty() {
                    out.push((start_line, starts_blank, std::mem::take(&mut tokens)));
                }
                start_line = line;
                depth = 0;
                fresh = true;
            }
            continue;
        }
        if comment {
            continue;
        }
        if escaped {
            escaped = false;
            cur.push(c);
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                cur.push(c);
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => comment = true,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    if !tokens.is_empty() {
        out.push((start_line, starts_blank, tokens));
    }
    out
}
