//! From a series of (time, master's flush LSN, LSN the standby acknowledged) samples to lag
//! in bytes and in milliseconds. Pure, so that the arithmetic is tested without a server.

use std::ops::Range;
use std::time::Duration;

/// One reading of the sampler: both LSNs come from the same query, so they are (nearly)
/// simultaneous; `at` is when the query was sent, from the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at: Duration,
    pub flush: u64,
    /// None until the standby acknowledged anything.
    pub ack: Option<u64>,
}

/// Lags of the samples taken under load.
#[derive(Debug, Clone, Default)]
pub struct Lags {
    /// flush - acknowledged, per sample (0 when the acknowledgement was already ahead of the
    /// flush read a moment before it in the same query).
    pub bytes: Vec<f64>,
    /// Per sample: how long until the acknowledged LSN reached that sample's flush LSN,
    /// measured to the first later sample that saw it there (so to within one sampling
    /// interval).
    pub ms: Vec<f64>,
    /// Samples whose flush was not acknowledged by the last sample of the series; counted
    /// in `ms` with the time to the last sample, a lower bound.
    pub unresolved: usize,
    /// Samples with nothing acknowledged yet (left out of `bytes`).
    pub no_ack: usize,
}

impl Lags {
    /// Pools the lags of another run of the same variant.
    pub fn extend(&mut self, other: Lags) {
        self.bytes.extend(other.bytes);
        self.ms.extend(other.ms);
        self.unresolved += other.unresolved;
        self.no_ack += other.no_ack;
    }
}

/// The lags of the samples taken in `window` (the load); the samples after it (the drain,
/// load stopped) only tell when the last flushes under load were acknowledged.
pub fn lags(samples: &[Sample], window: Range<Duration>) -> Lags {
    let mut out = Lags::default();
    // The flush LSN never goes back, so the first sample that acknowledges sample i's flush
    // is never before the one that acknowledged sample i-1's: one pass.
    let mut j = 0;
    for (i, s) in samples.iter().enumerate() {
        if !window.contains(&s.at) {
            continue;
        }
        match s.ack {
            Some(ack) => out.bytes.push(s.flush.saturating_sub(ack) as f64),
            None => out.no_ack += 1,
        }
        j = j.max(i);
        while j < samples.len() && samples[j].ack.is_none_or(|a| a < s.flush) {
            j += 1;
        }
        let reached = match samples.get(j) {
            Some(r) => r.at,
            None => {
                out.unresolved += 1;
                samples.last().map_or(s.at, |l| l.at)
            }
        };
        out.ms.push((reached - s.at).as_secs_f64() * 1000.0);
    }
    out
}

/// The nearest-rank percentile `p` (0-100] of `values`; NaN when there are none.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// (median, largest) gap between consecutive samples, in ms: the resolution of `Lags::ms`.
pub fn intervals(samples: &[Sample]) -> (f64, f64) {
    let gaps: Vec<f64> = samples
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64() * 1000.0)
        .collect();
    (
        percentile(&gaps, 50.0),
        gaps.iter().copied().fold(f64::NAN, f64::max),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ms: u64, flush: u64, ack: Option<u64>) -> Sample {
        Sample {
            at: Duration::from_millis(ms),
            flush,
            ack,
        }
    }

    #[test]
    fn the_lag_in_ms_is_the_time_until_a_later_sample_acknowledges_the_flush() {
        let series = [
            s(0, 100, Some(100)),
            s(10, 200, Some(100)),
            s(20, 300, Some(150)),
            s(30, 300, Some(300)),
            s(40, 300, Some(300)),
        ];
        let l = lags(&series, Duration::ZERO..Duration::from_millis(35));
        assert_eq!(l.ms, vec![0.0, 20.0, 10.0, 0.0]);
        assert_eq!(l.bytes, vec![0.0, 100.0, 150.0, 0.0]);
        assert_eq!((l.unresolved, l.no_ack), (0, 0));
    }

    #[test]
    fn samples_after_the_load_resolve_but_do_not_count() {
        let series = [
            s(0, 100, None),
            s(10, 200, Some(100)),
            s(20, 200, Some(200)),
        ];
        let l = lags(&series, Duration::ZERO..Duration::from_millis(15));
        assert_eq!(l.ms, vec![10.0, 10.0]);
        assert_eq!(l.bytes, vec![100.0]);
        assert_eq!(l.no_ack, 1);
    }

    #[test]
    fn a_flush_never_acknowledged_counts_as_a_lower_bound() {
        let series = [s(0, 100, Some(50)), s(10, 100, Some(60))];
        let l = lags(&series, Duration::ZERO..Duration::from_secs(1));
        assert_eq!(l.ms, vec![10.0, 0.0]);
        assert_eq!(l.unresolved, 2);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
