//! [`Lsn`]: a position in the WAL, and the names of the 16 MiB segment files that hold it.

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The WAL segment size toygres archives: PostgreSQL's default (`initdb --wal-segsize=16`).
/// Protecting an instance with another size is refused.
pub const SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// Segments per "xlogid" (the middle 8 hex digits of a segment's name).
const SEGMENTS_PER_ID: u64 = 0x1_0000_0000 / SEGMENT_SIZE;

/// A WAL position (`pg_lsn`), written as PostgreSQL writes it: `16/B374D848`.
///
/// ```
/// use toygres_core::wal::Lsn;
/// let lsn: Lsn = "16/B374D848".parse().unwrap();
/// assert_eq!(lsn.to_string(), "16/B374D848");
/// assert_eq!(lsn.segment_name(1), "0000000100000016000000B3");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The number of the segment holding this position.
    pub fn segment(self) -> u64 {
        self.0 / SEGMENT_SIZE
    }

    /// The file name of the segment holding this position on `timeline`.
    pub fn segment_name(self, timeline: u32) -> String {
        segment_name(timeline, self.segment())
    }

    /// The first position of segment `segment`.
    pub fn of_segment(segment: u64) -> Self {
        Lsn(segment * SEGMENT_SIZE)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::InvalidRequest {
            field: "lsn",
            reason: format!("{s:?} is not a WAL position; write it as PostgreSQL does, e.g. 0/3000148"),
        };
        let (high, low) = s.trim().split_once('/').ok_or_else(invalid)?;
        let part = |p: &str| {
            (!p.is_empty() && p.len() <= 8).then(|| u32::from_str_radix(p, 16).ok()).flatten().ok_or_else(invalid)
        };
        Ok(Lsn((u64::from(part(high)?) << 32) | u64::from(part(low)?)))
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The file name of segment `segment` on `timeline`: 24 hex digits.
pub fn segment_name(timeline: u32, segment: u64) -> String {
    format!("{timeline:08X}{:08X}{:08X}", segment / SEGMENTS_PER_ID, segment % SEGMENTS_PER_ID)
}

/// `(timeline, segment)` of a segment file name (24 hex digits), or `None`.
pub fn parse_segment_name(name: &str) -> Option<(u32, u64)> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| u64::from_str_radix(&name[range], 16).ok();
    let (timeline, id, seg) = (field(0..8)?, field(8..16)?, field(16..24)?);
    (seg < SEGMENTS_PER_ID).then(|| (timeline as u32, id * SEGMENTS_PER_ID + seg))
}

/// The timeline of a history file name (`00000002.history`), or `None`.
pub fn parse_history_name(name: &str) -> Option<u32> {
    let hex = name.strip_suffix(".history")?;
    (hex.len() == 8).then(|| u32::from_str_radix(hex, 16).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_names_round_trip() {
        for text in ["0/0", "0/3000148", "16/B374D848", "FFFFFFFF/FFFFFFFF"] {
            assert_eq!(text.parse::<Lsn>().unwrap().to_string(), text);
        }
        for bad in ["", "3000148", "0/", "/1", "0/G", "1/123456789", "-1/0"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
        let lsn: Lsn = "1/3000148".parse().unwrap();
        assert_eq!(lsn.segment_name(2), "000000020000000100000003");
        assert_eq!(parse_segment_name("000000020000000100000003"), Some((2, lsn.segment())));
        assert_eq!(parse_segment_name("0000000200000001000001FF"), None, "only 256 segments per id");
        assert_eq!(parse_segment_name("000000020000000100000003.partial"), None);
        assert_eq!(parse_history_name("0000000A.history"), Some(10));
        assert_eq!(parse_history_name("000000020000000100000003"), None);
    }

    #[test]
    fn serde_uses_the_postgres_spelling() {
        let lsn: Lsn = "A/1".parse().unwrap();
        assert_eq!(serde_json::to_string(&lsn).unwrap(), "\"A/1\"");
        assert_eq!(serde_json::from_str::<Lsn>("\"A/1\"").unwrap(), lsn);
        assert!(serde_json::from_str::<Lsn>("\"nope\"").is_err());
    }
}
