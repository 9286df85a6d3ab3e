//! Timestamps in JSON rows: RFC 3339 text to and from epoch microseconds.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats epoch microseconds as RFC 3339 UTC with microseconds: `2024-01-07T02:19:39.533398Z`.
pub fn format_timestamp(us: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => us.to_string(),
    }
}

/// Parses RFC 3339 into epoch microseconds; sub-microsecond digits are an error, not rounded.
#[inline(never)]
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("\"{s}\" is not an RFC 3339 timestamp: {e}"))?;
    if t.timestamp_subsec_nanos() % 1000 != 0 {
        return Err(format!("\"{s}\" has sub-microsecond precision"));
    }
    Ok(t.timestamp_micros())
}

/// [`parse_timestamp`] of a string's UTF-8, with the common form read without chrono.
pub(super) fn read_timestamp(s: &[u8]) -> Result<i64, String> {
    match fast_timestamp(s) {
        Some(us) => Ok(us),
        None => parse_timestamp(&String::from_utf8_lossy(s)),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` as epoch microseconds, when it is a
/// valid time of at most microsecond precision; `None` for anything else (left to
/// [`parse_timestamp`], which accepts more forms and words the errors).
pub(super) fn fast_timestamp(s: &[u8]) -> Option<i64> {
    fn num(s: &[u8]) -> Option<i64> {
        s.iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    }
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[13] != b':' {
        return None;
    }
    if s[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(&s[0..4])?, num(&s[5..7])?, num(&s[8..10])?);
    let (hour, minute, second) = (num(&s[11..13])?, num(&s[14..16])?, num(&s[17..19])?);
    let mut i = 19;
    let mut micros = 0;
    if s[i] == b'.' {
        let from = i + 1;
        let len = s[from..].iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        let frac = &s[from..from + len];
        // Digits past the microsecond must be zero (else the timestamp is refused).
        if frac.iter().skip(6).any(|&c| c != b'0') {
            return None;
        }
        let six = &frac[..len.min(6)];
        micros = num(six)? * 10i64.pow(6 - six.len() as u32);
        i = from + len;
    }
    let offset_minutes = match s.get(i..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (num(&[*h1, *h2])?, num(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), as in Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000_000 + micros)
}
