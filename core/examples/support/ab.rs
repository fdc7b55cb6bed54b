//! Interleaved A/B rounds shared by the codec examples: on a small shared
//! machine two separate runs drift by ±20%; alternating short rounds of
//! each side and taking medians of per-round figures cancels that drift.

use std::time::{Duration, Instant};

const ROUNDS: usize = 41;
const ROUND_TIME: Duration = Duration::from_millis(40);

/// Runs `f` repeatedly for about `ROUND_TIME`; returns seconds per call.
fn round(f: &mut dyn FnMut()) -> f64 {
    let started = Instant::now();
    let mut calls = 0u32;
    while started.elapsed() < ROUND_TIME {
        f();
        calls += 1;
    }
    started.elapsed().as_secs_f64() / calls as f64
}

pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Seconds per call of `a` and of `b` in each of the alternating rounds
/// (which side goes first alternates too, so neither always runs warm).
pub(crate) fn alternate(a: &mut dyn FnMut(), b: &mut dyn FnMut()) -> Vec<(f64, f64)> {
    (0..ROUNDS)
        .map(|i| {
            if i % 2 == 0 {
                let first = round(a);
                (first, round(b))
            } else {
                let second = round(b);
                (round(a), second)
            }
        })
        .collect()
}
