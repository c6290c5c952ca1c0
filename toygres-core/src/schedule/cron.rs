//! Cron expressions of schedules: the standard 5 fields, evaluated in UTC.
//!
//! `minute hour day-of-month month day-of-week`, e.g. `0 3 * * *` (every day at 03:00 UTC) or
//! `*/15 * * * 1-5` (every quarter hour on weekdays). Fields take `*`, lists `a,b`, ranges `a-b`
//! and steps `*/n` / `a-b/n`; months `JAN-DEC` and weekdays `SUN-SAT` (0 and 7 are Sunday) by
//! name too; when both day fields are restricted, a day matching **either** one fires (as Vixie
//! cron). The nicknames `@yearly`, `@monthly`, `@weekly`, `@daily` and `@hourly` are accepted, and
//! so are [croner](https://docs.rs/croner)'s extensions (`L` last day, `W` nearest weekday, `#`
//! nth weekday). A seconds or a year field is refused. There is no time zone and so no daylight
//! saving time: every slot is a UTC minute.

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};

/// Longest cron expression accepted, in bytes.
pub const MAX_CRON_LEN: usize = 256;

/// A parsed, checked cron expression.
#[derive(Debug, Clone)]
pub struct CronExpr {
    inner: croner::Cron,
}

impl CronExpr {
    /// Parses `text`: [`Error::InvalidRequest`] on `cron` saying what is wrong when it is not a
    /// 5-field expression, or when it never fires (e.g. `0 0 30 2 *`, February 30th).
    ///
    /// ```
    /// use toygres_core::schedule::CronExpr;
    /// assert!(CronExpr::parse("0 3 * * *").is_ok());
    /// assert!(CronExpr::parse("0 0 3 * * *").is_err()); // a seconds field
    /// assert!(CronExpr::parse("61 * * * *").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |what: String| Error::InvalidRequest {
            field: "cron",
            reason: format!(
                "{what}; use 5 fields `minute hour day-of-month month day-of-week` in UTC, e.g. \"0 3 * * *\" \
                 (every day at 03:00 UTC)"
            ),
        };
        if text.len() > MAX_CRON_LEN {
            return Err(invalid(format!("longer than {MAX_CRON_LEN} bytes")));
        }
        if text.chars().any(char::is_control) {
            return Err(invalid(format!("{text:?} contains control characters")));
        }
        let fields = text.split_whitespace().count();
        if !text.trim_start().starts_with('@') && fields != 5 {
            return Err(invalid(format!("{text:?} has {fields} fields, not 5")));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let inner = parser.parse(text).map_err(|e| invalid(format!("{text:?} is not a cron expression: {e}")))?;
        let expr = Self { inner };
        let start = DateTime::<Utc>::UNIX_EPOCH;
        if expr.first_after(start).is_none() {
            return Err(invalid(format!("{text:?} never fires (no such date)")));
        }
        Ok(expr)
    }

    /// The latest slot at or before `t` (`None`: none within the search limit).
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.inner.find_previous_occurrence(&t, true).ok()
    }

    /// The first slot strictly after `t` (`None`: none within the search limit).
    pub fn first_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.inner.find_next_occurrence(&t, false).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn five_fields_in_utc() {
        let daily = CronExpr::parse("0 3 * * *").unwrap();
        assert_eq!(daily.latest_at_or_before(at("2026-12-05T03:00:00Z")), Some(at("2026-12-05T03:00:00Z")));
        assert_eq!(daily.latest_at_or_before(at("2026-12-05T02:59:59.999Z")), Some(at("2026-12-04T03:00:00Z")));
        assert_eq!(daily.latest_at_or_before(at("2026-12-05T03:00:30.5Z")), Some(at("2026-12-05T03:00:00Z")));
        assert_eq!(daily.first_after(at("2026-12-05T03:00:00Z")), Some(at("2026-12-06T03:00:00Z")));
        // No daylight saving time: the last Sunday of March and of October are ordinary days.
        assert_eq!(daily.first_after(at("2026-03-29T00:00:00Z")), Some(at("2026-03-29T03:00:00Z")));
        assert_eq!(daily.first_after(at("2026-10-25T00:00:00Z")), Some(at("2026-10-25T03:00:00Z")));
        let quarter = CronExpr::parse("*/15 * * * MON-FRI").unwrap();
        assert_eq!(quarter.latest_at_or_before(at("2026-12-05T10:20:00Z")), Some(at("2026-12-04T23:45:00Z")));
        assert!(CronExpr::parse("@daily").is_ok());
    }

    #[test]
    fn what_is_wrong_is_said() {
        for (bad, says) in [
            ("", "0 fields"),
            ("* * * *", "4 fields"),
            ("0 0 3 * * *", "6 fields"),
            ("61 * * * *", "not a cron expression"),
            ("0 25 * * *", "not a cron expression"),
            ("x * * * *", "not a cron expression"),
            ("0 0 30 2 *", "never fires"),
            ("0\n3 * * *", "control characters"),
        ] {
            match CronExpr::parse(bad) {
                Err(Error::InvalidRequest { field: "cron", reason }) => {
                    assert!(reason.contains(says) && reason.contains("5 fields"), "{bad:?}: {reason}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(CronExpr::parse(&"1,".repeat(200)).is_err());
    }
}
