//! Failure detection for one node: `up` → `suspect` → `down` as heartbeats
//! stop, and back to `up` when they resume.
//!
//! A short `suspect_after` notices a crash quickly but only stops new chunks
//! going to the node. `down_after` is longer, so that a slow node or a
//! reboot is not declared failed. Repair waits a further grace period after
//! `down` (the scrubber's `repair_after`). The state machine is pure: the
//! caller passes the current instant, so tests need no clock.

use std::time::Instant;

use cairn_core::placement::NodeState;

pub use cairn_meta_api::config::DetectorConfig;

/// A state change, to be recorded with its time and published to watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: NodeState,
    pub to: NodeState,
}

/// What the detector knows about one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    state: NodeState,
    last_heartbeat: Instant,
}

impl Liveness {
    /// A node that just registered (registration counts as a heartbeat).
    pub fn new(now: Instant) -> Self {
        Self {
            state: NodeState::Up,
            last_heartbeat: now,
        }
    }

    /// A node known from before a restart: its state is kept, and the
    /// silence is counted from now (a restart of the metadata service does
    /// not declare every node dead).
    pub fn restored(state: NodeState, now: Instant) -> Self {
        Self {
            state,
            last_heartbeat: now,
        }
    }

    pub fn state(&self) -> NodeState {
        self.state
    }

    pub fn last_heartbeat(&self) -> Instant {
        self.last_heartbeat
    }

    /// Records a heartbeat; a suspect or down node comes back up.
    pub fn heartbeat(&mut self, now: Instant) -> Option<Transition> {
        self.last_heartbeat = self.last_heartbeat.max(now);
        self.set(NodeState::Up)
    }

    /// Re-evaluates the state at `now`. Silence only ever escalates the
    /// state; only a heartbeat brings a node back up.
    pub fn tick(&mut self, now: Instant, config: &DetectorConfig) -> Option<Transition> {
        let silent = now.saturating_duration_since(self.last_heartbeat);
        let by_silence = if silent >= config.down_after {
            NodeState::Down
        } else if silent >= config.suspect_after {
            NodeState::Suspect
        } else {
            NodeState::Up
        };
        self.set(escalate(self.state, by_silence))
    }

    fn set(&mut self, to: NodeState) -> Option<Transition> {
        let from = self.state;
        self.state = to;
        (from != to).then_some(Transition { from, to })
    }
}

fn severity(state: NodeState) -> u8 {
    match state {
        NodeState::Up => 0,
        NodeState::Suspect => 1,
        NodeState::Down => 2,
    }
}

fn escalate(current: NodeState, observed: NodeState) -> NodeState {
    if severity(observed) > severity(current) {
        observed
    } else {
        current
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use NodeState::{Down, Suspect, Up};

    /// Replays (seconds since start, event) and checks the transitions seen.
    fn check(events: &[(u64, &str)], expected: &[(u64, NodeState, NodeState)]) {
        let config = DetectorConfig {
            suspect_after: Duration::from_secs(3),
            down_after: Duration::from_secs(10),
        };
        let start = Instant::now();
        let mut node = Liveness::new(start);
        let mut seen = Vec::new();
        for &(second, event) in events {
            let now = start + Duration::from_secs(second);
            let change = match event {
                "beat" => node.heartbeat(now),
                "tick" => node.tick(now, &config),
                other => panic!("unknown event {other}"),
            };
            if let Some(t) = change {
                seen.push((second, t.from, t.to));
            }
        }
        assert_eq!(seen, expected);
    }

    #[test]
    fn silent_node_goes_suspect_then_down_and_recovers() {
        check(
            &[
                (1, "beat"),
                (2, "tick"),
                (4, "tick"),
                (5, "tick"),
                (11, "tick"),
                (12, "tick"),
                (13, "beat"),
                (14, "tick"),
            ],
            &[(4, Up, Suspect), (11, Suspect, Down), (13, Down, Up)],
        );
    }

    #[test]
    fn steady_heartbeats_never_change_state() {
        let events: Vec<(u64, &str)> = (0..30).flat_map(|s| [(s, "beat"), (s, "tick")]).collect();
        check(&events, &[]);
    }

    #[test]
    fn a_brief_stall_is_only_suspect() {
        check(
            &[(5, "tick"), (6, "beat"), (7, "tick")],
            &[(5, Up, Suspect), (6, Suspect, Up)],
        );
    }

    #[test]
    fn a_long_gap_between_ticks_goes_straight_to_down() {
        check(&[(60, "tick")], &[(60, Up, Down)]);
    }

    #[test]
    fn a_restored_down_node_stays_down_until_it_heartbeats() {
        let config = DetectorConfig::LOCAL;
        let now = Instant::now();
        let mut node = Liveness::restored(Down, now);
        assert_eq!(node.tick(now + Duration::from_secs(1), &config), None);
        assert_eq!(node.state(), Down);
        assert_eq!(
            node.heartbeat(now + Duration::from_secs(2)),
            Some(Transition { from: Down, to: Up })
        );
    }

    #[test]
    fn a_late_heartbeat_from_the_past_does_not_rewind_time() {
        let start = Instant::now();
        let mut node = Liveness::new(start + Duration::from_secs(5));
        node.heartbeat(start);
        assert_eq!(node.last_heartbeat(), start + Duration::from_secs(5));
    }
}
