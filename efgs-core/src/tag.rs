//! Download batch tags: `yyyyMMdd-N`, the UTC creation day and a sequence number that starts
//! at 1 each day and grows by one per batch with no gaps (clients.md §1).

use time::{Date, OffsetDateTime, UtcOffset};

/// A download batch tag such as `20261128-3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchTag {
    /// The UTC day the batch was created.
    pub date: Date,
    /// The sequence number within that day, from 1.
    pub seq: u32,
}

/// A string that is not a `yyyyMMdd-N` tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// The text does not have the `yyyyMMdd-N` shape or names no real date.
    #[error("not a download batch tag (expected yyyyMMdd-N): {0:?}")]
    Malformed(String),
}

impl TagError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            TagError::Malformed(_) => "malformed-batch-tag",
        }
    }
}

impl BatchTag {
    /// The first tag of a UTC day.
    pub fn first_of(date: Date) -> Self {
        BatchTag { date, seq: 1 }
    }

    /// The tag the next batch gets when it is created at `now`, given the most recent
    /// batch's tag (of any day): the next number on the same UTC day, else 1.
    pub fn next(previous: Option<&BatchTag>, now: OffsetDateTime) -> Self {
        let today = now.to_offset(UtcOffset::UTC).date();
        match previous {
            Some(p) if p.date == today => BatchTag {
                date: today,
                seq: p.seq.saturating_add(1),
            },
            _ => BatchTag::first_of(today),
        }
    }

    /// Parses `yyyyMMdd-N` (N a decimal number from 1, no sign, no leading zeros).
    pub fn parse(s: &str) -> Result<Self, TagError> {
        let bad = || TagError::Malformed(s.chars().take(80).collect());
        let (day, seq) = s.split_once('-').ok_or_else(bad)?;
        if day.len() != 8 || !day.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if seq.is_empty()
            || seq.len() > 10
            || !seq.bytes().all(|b| b.is_ascii_digit())
            || seq.starts_with('0')
        {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| day[r].parse::<u32>().map_err(|_| bad());
        let year = i32::try_from(num(0..4)?).map_err(|_| bad())?;
        let month = u8::try_from(num(4..6)?).map_err(|_| bad())?;
        let month = time::Month::try_from(month).map_err(|_| bad())?;
        let dom = u8::try_from(num(6..8)?).map_err(|_| bad())?;
        let date = Date::from_calendar_date(year, month, dom).map_err(|_| bad())?;
        let seq = seq.parse::<u32>().map_err(|_| bad())?;
        Ok(BatchTag { date, seq })
    }
}

impl std::fmt::Display for BatchTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}{:02}{:02}-{}",
            self.date.year(),
            u8::from(self.date.month()),
            self.date.day(),
            self.seq
        )
    }
}

impl std::str::FromStr for BatchTag {
    type Err = TagError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BatchTag::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn formats_and_parses() {
        let t = BatchTag {
            date: date!(2026 - 01 - 05),
            seq: 12,
        };
        assert_eq!(t.to_string(), "20260105-12");
        assert_eq!(BatchTag::parse("20260105-12").unwrap(), t);
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "2026010512",
            "20260105-",
            "20260105-0",
            "20260105-01",
            "20261305-1",
            "20260230-1",
            "2026015-1",
            "20260105-1a",
            "20260105--1",
            "x0260105-1",
            "20260105-99999999999",
        ] {
            assert!(BatchTag::parse(s).is_err(), "{s} should be rejected");
        }
    }

    #[test]
    fn next_is_dense_and_restarts_each_utc_day() {
        let now = datetime!(2026-11-28 23:59:59 UTC);
        let first = BatchTag::next(None, now);
        assert_eq!(first.to_string(), "20261128-1");
        let second = BatchTag::next(Some(&first), now);
        assert_eq!(second.to_string(), "20261128-2");
        let after_midnight = BatchTag::next(Some(&second), datetime!(2026-11-29 00:00:00 UTC));
        assert_eq!(after_midnight.to_string(), "20261129-1");
        // A local offset does not change the UTC day.
        let local = datetime!(2026-11-29 00:30:00 +01:00);
        assert_eq!(
            BatchTag::next(Some(&second), local).to_string(),
            "20261128-3"
        );
    }
}
