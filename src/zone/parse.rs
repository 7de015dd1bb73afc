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
    let text = std::fs::read_to_string(path)
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
    let mut out = Vec::with_capacity(records.len());
    for (RrKey { .. }, set) in records {
        out.push(from_set(set));
    }
    Ok(out)
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
