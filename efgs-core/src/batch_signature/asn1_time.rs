//! UTCTime / GeneralizedTime for the signing-time attribute (RFC 5652 §11.3).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::ber::{Tlv, tag};

/// Parses a UTCTime (`YYMMDDHHMM[SS](Z|±hhmm)`) or GeneralizedTime
/// (`YYYYMMDDHHMM[SS[.f*]](Z|±hhmm)`) TLV. Local times without a zone are refused.
pub(crate) fn parse(t: &Tlv<'_>) -> Option<OffsetDateTime> {
    let s = std::str::from_utf8(t.value).ok()?;
    let (year, rest) = match t.tag_byte() {
        tag::UTC_TIME => {
            let yy: i32 = digits(s.get(..2)?)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        tag::GENERALIZED_TIME => (digits(s.get(..4)?)?, s.get(4..)?),
        _ => return None,
    };
    let month: u8 = digits(rest.get(..2)?)?;
    let day: u8 = digits(rest.get(2..4)?)?;
    let hour: u8 = digits(rest.get(4..6)?)?;
    let minute: u8 = digits(rest.get(6..8)?)?;
    let mut rest = rest.get(8..)?;
    let mut second = 0u8;
    if rest.len() >= 2 && rest.as_bytes()[0].is_ascii_digit() {
        // `get`: the second byte may start a multi-byte character (no slicing panic).
        second = digits(rest.get(..2)?)?;
        rest = rest.get(2..)?;
    }
    let mut nanos = 0u32;
    if t.tag_byte() == tag::GENERALIZED_TIME
        && let Some(frac) = rest.strip_prefix('.').or_else(|| rest.strip_prefix(','))
    {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let mut scaled = 0u32;
        for (i, b) in frac.bytes().take(n).enumerate() {
            if i < 9 {
                scaled = scaled * 10 + u32::from(b - b'0');
            }
        }
        for _ in n..9 {
            scaled *= 10;
        }
        nanos = scaled;
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" => UtcOffset::UTC,
        _ => {
            let sign: i8 = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 5 {
                return None;
            }
            let oh: i8 = digits(rest.get(1..3)?)?;
            let om: i8 = digits(rest.get(3..5)?)?;
            UtcOffset::from_hms(sign * oh, sign * om, 0).ok()?
        }
    };
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    // The instant in UTC may fall outside the representable years (9999-12-31T23:59:59-2359):
    // refused, never a panic.
    PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .checked_to_offset(UtcOffset::UTC)
}

fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// DER encoding of a signing time: UTCTime for 1950..=2049, GeneralizedTime otherwise
/// (RFC 5652 §11.3); whole seconds, UTC.
pub(crate) fn encode(t: OffsetDateTime) -> Option<Vec<u8>> {
    let t = t.to_offset(UtcOffset::UTC);
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return None;
    }
    let tail = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    Some(if (1950..=2049).contains(&year) {
        super::ber::der(tag::UTC_TIME, format!("{:02}{tail}", year % 100).as_bytes())
    } else {
        super::ber::der(tag::GENERALIZED_TIME, format!("{year:04}{tail}").as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn p(bytes: &[u8]) -> Option<OffsetDateTime> {
        parse(&Tlv::read_exact(bytes).unwrap())
    }

    #[test]
    fn round_trips_and_variants() {
        for t in [
            datetime!(2026-11-28 12:34:56 UTC),
            datetime!(1950-01-01 00:00:00 UTC),
            datetime!(2049-12-31 23:59:59 UTC),
            datetime!(2050-01-01 00:00:00 UTC),
            datetime!(1949-12-31 23:59:59 UTC),
        ] {
            let enc = encode(t).unwrap();
            assert_eq!(p(&enc), Some(t), "{t}");
        }
        assert_eq!(encode(datetime!(2026-01-02 03:04:05 UTC)).unwrap()[0], 0x17);
        assert_eq!(encode(datetime!(2050-01-02 03:04:05 UTC)).unwrap()[0], 0x18);
        assert_eq!(
            p(b"\x17\x0b2611281234Z"),
            Some(datetime!(2026-11-28 12:34:00 UTC))
        );
        assert_eq!(
            p(b"\x17\x11261128123456+0100"),
            Some(datetime!(2026-11-28 11:34:56 UTC))
        );
        assert_eq!(
            p(b"\x18\x1320261128123456.250Z"),
            Some(datetime!(2026-11-28 12:34:56.25 UTC))
        );
        assert_eq!(p(b"\x18\x0e20261128123456"), None);
        assert_eq!(p(b"\x17\x0d261328123456Z"), None);
        assert_eq!(p(b"\x04\x0d261128123456Z"), None);
    }

    /// Found by the `cms_verify` fuzz target: non-ASCII text where the seconds or the offset
    /// digits are expected is refused, not a slicing panic.
    #[test]
    fn instants_outside_the_representable_years_are_refused() {
        // GeneralizedTime (0x18) and UTCTime (0x17) at the edges, with offsets that push the
        // instant past year 9999 or before year -9999 in UTC.
        for (tag, text) in [
            (0x18u8, "99991231235959-2359"),
            (0x18, "99991231235959.999-2359"),
            (0x18, "00000101000000+2359"),
        ] {
            let mut der = vec![tag, u8::try_from(text.len()).unwrap()];
            der.extend_from_slice(text.as_bytes());
            let _ = p(&der); // must not panic
        }
        let mut der = vec![0x18u8, 19];
        der.extend_from_slice(b"99991231235959-2359");
        assert_eq!(p(&der), None);
    }

    #[test]
    fn multibyte_characters_are_refused() {
        // "2611290010" then '0' and 'ǥ' (2 bytes) where the seconds would be.
        assert_eq!(p("\x17\x0d26112900100ǥ".as_bytes()), None);
        // Offset "+0ǥ0": five bytes, a character across the hour/minute split.
        assert_eq!(p("\x17\x0f2611290010+0ǥ0".as_bytes()), None);
        assert_eq!(p("\x17\x0f2611290010+ǥ00".as_bytes()), None);
    }
}
