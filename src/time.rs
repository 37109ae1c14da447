//! UTC time as RFC 3339 text: Unix seconds to and from `YYYY-MM-DDTHH:MM:SSZ`, for delegation
//! token claims and log timestamps, without a time-zone database.
//!
//! Owns: the wall clock in whole seconds ([`unix_now`]) and one strict form, `YYYY-MM-DDTHH:MM:SSZ` (a `+00:00` offset is read too), in UTC, for years
//! 1970–9999. Everything in `i64` with checked arithmetic: a hostile time cannot overflow.
//! Never: reads local time zones, fractional seconds or leap seconds (`:60`).

/// The clock: whole Unix seconds now (0 before 1970, saturating far in the future).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`; `None` outside 1970–9999.
pub(crate) fn format(unix: i64) -> Option<String> {
    if !(0..=253_402_300_799).contains(&unix) {
        return None;
    }
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    ))
}

/// `YYYY-MM-DDTHH:MM:SSZ` (or `+00:00`) as Unix seconds; `None` for anything else.
pub(crate) fn parse(text: &str) -> Option<i64> {
    let (stamp, zone) = text.split_at_checked(19)?;
    if zone != "Z" && zone != "+00:00" {
        return None;
    }
    let b = stamp.as_bytes();
    let sep_ok = b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && b.get(10) == Some(&b'T')
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':');
    if !sep_ok {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = stamp.get(from..to)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let month_ok = (1..=12).contains(&month);
    if year < 1970 || !month_ok || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    days.checked_mul(86_400)?
        .checked_add(hour * 3600 + minute * 60 + second)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_round_trip() {
        assert_eq!(format(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(format(1_795_000_000).unwrap(), "2026-11-18T11:06:40Z");
        assert_eq!(parse("2022-01-01T00:00:00+00:00"), Some(1_640_995_200));
        assert_eq!(parse("2024-02-29T23:59:59Z"), Some(1_709_251_199));
        for t in [
            0,
            951_782_400,
            1_709_251_199,
            4_102_444_800,
            253_402_300_799,
        ] {
            assert_eq!(parse(&format(t).unwrap()), Some(t));
        }
    }

    #[test]
    fn anything_but_the_strict_form_is_refused() {
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27T10:00:00",
            "2026-11-27T10:00:00.5Z",
            "2026-11-27T10:00:00+01:00",
            "2026-11-27t10:00:00Z",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T23:59:60Z",
            "1969-12-31T23:59:59Z",
            "+026-11-27T10:00:00Z",
            "2026-11-2\u{663}T10:00:00Z",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(format(-1), None);
        assert_eq!(format(i64::MAX), None);
    }
}
