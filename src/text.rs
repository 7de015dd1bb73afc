//! How values are written for people and for JSON, in one place: times,
//! durations, measurements and names that the status, explain, the logs
//! and the audit all print.

use std::time::{Duration, SystemTime};

use crate::config::CheckKind;

/// A time as RFC 3339, to the second (status and drains).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Now, as RFC 3339 with milliseconds (the audit, liveness records).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// ` for 5m` after a drain's description, or nothing.
pub fn for_text(d: Option<Duration>) -> String {
    d.map_or(String::new(), |d| {
        format!(" for {}", humantime::format_duration(d))
    })
}

/// A measurement rounded to 0.001 for JSON.
pub fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

/// A measurement for JSON: null while unknown (NaN), else rounded to 0.001.
pub fn known(v: f32) -> Option<f64> {
    (!v.is_nan()).then(|| round3(f64::from(v)))
}

/// The name of a check kind, as the configuration writes it.
pub fn kind_name(k: CheckKind) -> &'static str {
    match k {
        CheckKind::Http => "http",
        CheckKind::Https => "https",
        CheckKind::Tcp => "tcp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_round_and_unknowns_are_null() {
        assert_eq!(round3(1.23456), 1.235);
        assert_eq!(known(f32::NAN), None);
        assert_eq!(known(2.5), Some(2.5));
        assert_eq!(for_text(None), "");
        assert_eq!(for_text(Some(Duration::from_secs(300))), " for 5m");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
