//! Proleptic Gregorian dates ↔ day counts since 1970-01-01 (H. Hinnant's algorithms): the one
//! place in the crate where calendar dates become numbers and back, for the hot paths that
//! cannot afford `chrono` (FIX SendingTime, timestamp printing).

/// Days in `month` (1-12) of `year`.
pub fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a calendar date; `None` when it is not one (month 13, Feb 30) or
/// lies outside years 0..=9999.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    if !(0..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn invalid_dates_are_refused() {
        assert_eq!(days_from_civil(2025, 2, 31), None);
        assert_eq!(days_from_civil(2025, 2, 29), None);
        assert!(days_from_civil(2024, 2, 29).is_some());
        assert_eq!(days_from_civil(1900, 2, 29), None);
        assert!(days_from_civil(2000, 2, 29).is_some());
        assert_eq!(days_from_civil(2025, 13, 1), None);
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
    }

    proptest! {
        #[test]
        fn days_and_dates_round_trip(z in -719_162i64..2_932_896) {
            let (y, m, d) = civil_from_days(z);
            prop_assert_eq!(days_from_civil(y, m, d), Some(z));
        }
    }
}
