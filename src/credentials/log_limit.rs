//! At most a few log lines about failed credentials per interval: a flood of wrong passwords
//! must not flood the log. Lines dropped are counted and reported by the next one let through.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub struct LogLimiter {
    per_window: u32,
    window: Duration,
    state: Mutex<Window>,
}

struct Window {
    started: Instant,
    lines: u32,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(per_window: u32, window: Duration) -> LogLimiter {
        LogLimiter {
            per_window,
            window,
            state: Mutex::new(Window {
                started: Instant::now(),
                lines: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(lines suppressed since the last one)` when this line may be logged.
    pub fn permit(&self, now: Instant) -> Option<u64> {
        let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(w.started) >= self.window {
            w.started = now;
            w.lines = 0;
        }
        if w.lines >= self.per_window {
            w.suppressed += 1;
            return None;
        }
        w.lines += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_lines_per_window_then_a_count() {
        let l = LogLimiter::new(3, Duration::from_secs(10));
        let now = Instant::now();
        let allowed: Vec<_> = (0..100).filter_map(|_| l.permit(now)).collect();
        assert_eq!(allowed, vec![0, 0, 0]);
        assert_eq!(l.permit(now + Duration::from_secs(10)), Some(97));
        assert_eq!(l.permit(now + Duration::from_secs(10)), Some(0));
    }
}
