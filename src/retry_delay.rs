//! The jittered exponential delay the long-running roles wait before trying again (a worker's
//! Salesforce write, a change event subscription), on backon's schedule.

use std::time::Duration;

use backon::BackoffBuilder;

/// The delay before attempt `attempts + 1`: from `min`, doubling, jittered, at most `max`.
pub fn nth(min: Duration, max: Duration, attempts: u32) -> Duration {
    backon::ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempts.saturating_sub(1) as usize)
        .unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_within_the_bounds() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        for attempts in 1..20 {
            let d = nth(min, max, attempts);
            assert!(d >= min && d <= max * 2, "{attempts}: {d:?}");
        }
        assert!(nth(min, max, 12) >= Duration::from_secs(1));
    }
}
