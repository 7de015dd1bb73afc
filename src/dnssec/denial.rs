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

/// A regular NSEC (RFC 4034) of a chain, for zone transfers: the next
/// name in canonical order, and the types at the owner (RRSIG and NSEC
/// are added).
pub fn chain(next: &Name, types: &[u16]) -> RData {
    let types = types
        .iter()
        .copied()
        .chain([rtype::RRSIG, rtype::NSEC])
        .map(RecordType::from);
    RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(next.clone(), types)))
}

/// The NSEC RDATA of a name that does not exist.
pub fn nxname(owner: &Name) -> Option<RData> {
    nsec(owner, &[rtype::NXNAME])
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RecordType;

    #[test]
    fn the_next_name_is_the_immediate_successor_and_the_bitmap_exact() {
        let owner = Name::from_ascii("nope.example.test.").unwrap();
        let Some(RData::DNSSEC(DNSSECRData::NSEC(n))) = nxname(&owner) else {
            panic!("an NSEC");
        };
        assert_eq!(n.next_domain_name().to_ascii(), "\\000.nope.example.test.");
        let types: Vec<RecordType> = n.type_bit_maps().collect();
        assert_eq!(
            types,
            vec![
                RecordType::RRSIG,
                RecordType::NSEC,
                RecordType::Unknown(128)
            ]
        );
        let Some(RData::DNSSEC(DNSSECRData::NSEC(n))) = nsec(&owner, &[1, 28, 16]) else {
            panic!("an NSEC");
        };
        let types: Vec<u16> = n.type_bit_maps().map(u16::from).collect();
        assert_eq!(types, vec![1, 16, 28, 46, 47]);
    }

    #[test]
    fn a_name_too_long_for_a_successor_gets_none() {
        // 4 labels of 63 bytes: 255 bytes in wire form, 254 as text
        let label = "a".repeat(63);
        let long = format!("{label}.{label}.{label}.{}.", "a".repeat(61));
        let owner = Name::from_ascii(&long).unwrap();
        assert!(nxname(&owner).is_none());
        let short = Name::from_ascii("x.example.").unwrap();
        assert!(nxname(&short).is_some());
    }
}
