//! Compact denial of existence (RFC 9824): one NSEC at the name asked
//! for, whose next name is its immediate successor `\000.<name>`, so it
//! covers nothing else. At a name that does not exist its bitmap is
//! {RRSIG, NSEC, NXNAME}; at a name that exists it lists the name's types.

use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::zone::rtype;

/// The NSEC RDATA at `owner` with the types `types` (RRSIG and NSEC are
/// added), next name `\000.owner`. `None` when the successor would be
/// longer than a name may be (a 254-byte owner).
pub fn nsec(owner: &Name, types: &[u16]) -> Option<RData> {
    let next = Name::from_labels(std::iter::once(&[0u8][..]).chain(owner.iter())).ok()?;
    if next.len() > 254 {
        return None;
    }
    let types = types
        .iter()
        .copied()
        .chain([rtype::RRSIG, rtype::NSEC])
        .map(RecordType::from);
    Some(RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(next, types))))
}

/// The NSEC RDATA of a name that does not exist.
pub fn nxname(owner: &Name) -> Option<RData> {
    nsec(owner, &[rtype::NXNAME])
}
