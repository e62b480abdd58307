//! When a deferred message is tried again, and when it is given up.
//!
//! Retries back off exponentially from `first_retry` (5 minutes) and never wait longer
//! than `max_retry` (4 hours); a message still undeliverable `max_age` (5 days) after it
//! was queued is given up and its sender told (RFC 5321 §4.5.4.1 asks for at least 4-5
//! days and at least 30 minutes between tries).

use std::time::Duration;

use crate::DeliverySettings;

/// How long to wait after the `attempts`-th attempt (counting from 1) before the next:
/// `first_retry × 2^(attempts − 1)`, capped at `max_retry`.
pub(crate) fn retry_delay(settings: &DeliverySettings, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(31);
    settings
        .first_retry
        .checked_mul(1u32 << doublings)
        .unwrap_or(settings.max_retry)
        .min(settings.max_retry)
}

/// Whether a message queued at `created` has been undeliverable for too long at `now`
/// (seconds since the epoch).
pub(crate) fn expired(settings: &DeliverySettings, created: i64, now: i64) -> bool {
    let age = u64::try_from(now.saturating_sub(created)).unwrap_or(0);
    age >= settings.max_age.as_secs()
}

/// The error a given-up recipient keeps: `gave up after 5 days: <last error>`.
pub(crate) fn gave_up(created: i64, now: i64, last_error: &str) -> String {
    let age = u64::try_from(now.saturating_sub(created)).unwrap_or(0);
    format!("gave up after {}: {last_error}", human_duration(age))
}

/// `5 days`, `1 hour`, `30 seconds`: the largest unit that fits, whole.
fn human_duration(seconds: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let (size, name) = UNITS
        .into_iter()
        .find(|(size, _)| seconds >= *size)
        .unwrap_or((1, "second"));
    let count = seconds / size;
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {name}{plural}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DeliverySettings {
        DeliverySettings::default()
    }

    #[test]
    fn backoff_doubles_from_first_retry_up_to_max_retry() {
        let minutes: Vec<u64> = (1..=8)
            .map(|attempts| retry_delay(&settings(), attempts).as_secs() / 60)
            .collect();
        assert_eq!(minutes, [5, 10, 20, 40, 80, 160, 240, 240]);
    }

    #[test]
    fn backoff_never_overflows() {
        assert_eq!(retry_delay(&settings(), u32::MAX), settings().max_retry);
        assert_eq!(retry_delay(&settings(), 0), settings().first_retry);
        let tiny = DeliverySettings {
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(u64::MAX / 2),
            ..settings()
        };
        assert_eq!(retry_delay(&tiny, 40), Duration::from_secs(1 << 31));
    }

    #[test]
    fn a_message_expires_at_max_age_not_before() {
        let created = 1_000_000;
        let max_age = settings().max_age.as_secs() as i64;
        assert!(!expired(&settings(), created, created + max_age - 1));
        assert!(expired(&settings(), created, created + max_age));
        // A clock that went backwards never expires anything.
        assert!(!expired(&settings(), created, created - 10));
    }

    #[test]
    fn given_up_error_says_how_long_and_why() {
        assert_eq!(
            gave_up(0, 5 * 86_400 + 7, "451 4.3.0 try later"),
            "gave up after 5 days: 451 4.3.0 try later"
        );
        assert_eq!(gave_up(0, 3_600, "x"), "gave up after 1 hour: x");
        assert_eq!(gave_up(0, 90, "x"), "gave up after 1 minute: x");
        assert_eq!(gave_up(10, 3, "x"), "gave up after 0 seconds: x");
    }
}
