//! Per-extension call limits, the toll-fraud brake: a stolen password or a
//! hijacked phone can place at most `max_concurrent` calls at once and
//! `per_minute` calls a minute. Calls are tracked by Call-ID from the
//! authenticated INVITE to the BYE that passes through us (we record-route),
//! or to a failed or cancelled final response; a call whose BYE never came
//! is dropped after `max_duration_secs`.

use std::collections::{HashMap, VecDeque};

use shield::config::CallsConfig as CallLimitConfig;

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Concurrent(u32),
    PerMinute(u32),
}

struct Call {
    caller: String,
    started: u64,
}

#[derive(Default)]
pub(crate) struct CallLimits {
    calls: HashMap<String, Call>,
    in_progress: HashMap<String, u32>,
    recent: HashMap<String, VecDeque<u64>>,
}

impl CallLimits {
    /// A new call `call_id` by `caller`: admitted and counted, or refused.
    /// A Call-ID already counted (a re-sent INVITE) is not counted twice.
    pub(crate) fn start(
        &mut self,
        cfg: &CallLimitConfig,
        caller: &str,
        call_id: &str,
        now: u64,
    ) -> Result<(), Refused> {
        if self.calls.contains_key(call_id) {
            return Ok(());
        }
        let n = self.in_progress.get(caller).copied().unwrap_or(0);
        if n >= cfg.max_concurrent {
            return Err(Refused::Concurrent(cfg.max_concurrent));
        }
        let recent = self.recent.entry(caller.to_string()).or_default();
        while recent.front().is_some_and(|&t| t + 60 <= now) {
            recent.pop_front();
        }
        if recent.len() >= cfg.per_minute as usize {
            return Err(Refused::PerMinute(cfg.per_minute));
        }
        recent.push_back(now);
        *self.in_progress.entry(caller.to_string()).or_default() += 1;
        self.calls.insert(
            call_id.to_string(),
            Call {
                caller: caller.to_string(),
                started: now,
            },
        );
        Ok(())
    }

    /// The call ended (BYE, or a final response other than 2xx).
    pub(crate) fn end(&mut self, call_id: &str) {
        if let Some(c) = self.calls.remove(call_id) {
            if let Some(n) = self.in_progress.get_mut(&c.caller) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.in_progress.remove(&c.caller);
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn in_progress(&self, caller: &str) -> u32 {
        self.in_progress.get(caller).copied().unwrap_or(0)
    }

    /// Forgets calls past `max_duration_secs` and old start times.
    pub(crate) fn expire(&mut self, cfg: &CallLimitConfig, now: u64) {
        let stale: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| c.started + cfg.max_duration_secs <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.end(&id);
        }
        self.recent
            .retain(|_, q| q.back().is_some_and(|&t| t + 60 > now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_and_rate_limits() {
        let cfg = CallLimitConfig::default();
        let mut l = CallLimits::default();
        for i in 0..4 {
            l.start(&cfg, "1000", &format!("c{i}"), 100).unwrap();
        }
        assert_eq!(
            l.start(&cfg, "1000", "c4", 100),
            Err(Refused::Concurrent(4))
        );
        assert_eq!(l.start(&cfg, "1000", "c0", 100), Ok(()), "a re-sent INVITE");
        assert_eq!(l.in_progress("1000"), 4);
        l.start(&cfg, "1001", "d0", 100).unwrap();
        // Calls that end free their slot; the minute still counts them.
        for i in 0..4 {
            l.end(&format!("c{i}"));
        }
        assert_eq!(l.in_progress("1000"), 0);
        for i in 5..11 {
            l.start(&cfg, "1000", &format!("c{i}"), 110).unwrap();
            l.end(&format!("c{i}"));
        }
        assert_eq!(
            l.start(&cfg, "1000", "c11", 120),
            Err(Refused::PerMinute(10))
        );
        assert_eq!(l.start(&cfg, "1000", "c11", 160), Ok(()));
        // A call without BYE is forgotten after max_duration_secs.
        l.expire(&cfg, 160 + cfg.max_duration_secs);
        assert_eq!(l.in_progress("1000"), 0);
        assert_eq!(l.in_progress("1001"), 0);
    }
}
