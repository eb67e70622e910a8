//! Reconnect attempts, counted by us: the client retries on its own but reports neither a
//! failed attempt nor its delay, so the status would otherwise say nothing while nothing works.

use std::sync::Mutex;
use std::time::Duration;

/// The client's reconnect schedule: Fibonacci seconds (1, 1, 2, 3, 5, 8 …), capped at 15 min.
pub(super) fn retry_delay(failed_attempts: u32) -> Duration {
    let (mut a, mut b) = (1u64, 1u64);
    for _ in 0..failed_attempts.min(40) {
        (a, b) = (b, a + b);
    }
    Duration::from_secs(a.min(900))
}

#[derive(Debug, Default)]
struct State {
    /// An attempt is under way.
    trying: bool,
    /// The attempt under way reached the server (a QR code, a pairing or a login).
    reached: bool,
    /// Attempts in a row that did not reach the server.
    failures: u32,
}

#[derive(Debug, Default)]
pub(super) struct Attempts(Mutex<State>);

/// A failed attempt to report: how many failed in a row and when the next one comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FailedAttempt {
    pub attempt: u32,
    pub retry_in: Duration,
}

impl Attempts {
    /// A connection attempt starts. When the one before it never reached the server, that
    /// one failed.
    pub fn start(&self) -> Option<FailedAttempt> {
        let mut state = self.lock();
        let failed = (state.trying && !state.reached).then(|| {
            state.failures += 1;
            FailedAttempt { attempt: state.failures, retry_in: retry_delay(state.failures - 1) }
        });
        state.trying = true;
        state.reached = false;
        failed
    }

    /// The attempt under way could not even open a connection.
    pub fn failed_now(&self) -> FailedAttempt {
        let mut state = self.lock();
        state.trying = false;
        state.failures += 1;
        FailedAttempt { attempt: state.failures, retry_in: retry_delay(state.failures - 1) }
    }

    /// The server answered: a QR code, a pairing or a login.
    pub fn reached(&self) {
        let mut state = self.lock();
        state.reached = true;
        state.failures = 0;
    }

    /// An established connection dropped; the client tries again after the first delay.
    pub fn dropped(&self) -> Duration {
        let mut state = self.lock();
        state.trying = false;
        state.failures = 0;
        retry_delay(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_clients_schedule() {
        let secs: Vec<u64> = (0..7).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 1, 2, 3, 5, 8, 13]);
        assert_eq!(retry_delay(100), Duration::from_secs(900));
    }

    #[test]
    fn an_attempt_that_never_reached_the_server_is_reported_when_the_next_one_starts() {
        let attempts = Attempts::default();
        assert_eq!(attempts.start(), None, "the first attempt has nothing to report");
        assert_eq!(attempts.start(), Some(FailedAttempt { attempt: 1, retry_in: Duration::from_secs(1) }));
        assert_eq!(attempts.start(), Some(FailedAttempt { attempt: 2, retry_in: Duration::from_secs(1) }));
        assert_eq!(attempts.failed_now(), FailedAttempt { attempt: 3, retry_in: Duration::from_secs(2) });
        assert_eq!(attempts.start(), None, "a refused connection was reported already");
        attempts.reached();
        assert_eq!(attempts.start(), None, "the reconnect after a pairing is not a failure");
        attempts.reached();
        assert_eq!(attempts.dropped(), Duration::from_secs(1));
        assert_eq!(attempts.start(), None);
        assert_eq!(attempts.start(), Some(FailedAttempt { attempt: 1, retry_in: Duration::from_secs(1) }));
    }
}
