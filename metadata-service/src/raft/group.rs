//! One running Raft group of this process, and the two ways the service
//! uses it: [`Group::write`] (commit a proposal, answer with what applying
//! it returned) and [`Group::linearize`] (before a read: make sure this
//! replica leads and has applied everything committed before the read
//! began). Both are bounded: a group without a quorum answers `no_quorum`
//! within [`COMMIT_DEADLINE`], never waits forever.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use cairn_meta_api::model::GroupStatus;
use cairn_meta_api::shard_map::GroupId;
use cairn_service::{ApiError, ErrorCode, HttpClient};
use openraft::BasicNode;
use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};

use super::log_store::LogStore;
use super::network::Network;
use super::state_machine::{Machine, StateMachineStore};
use super::{Proposal, Raft, ReplicaId, Reply};
use crate::cluster::ClusterState;
use crate::shard::Shard;

/// How long a write or a linearizable read waits for a quorum.
pub const COMMIT_DEADLINE: Duration = Duration::from_secs(4);

/// What a group replicates.
#[derive(Debug, Clone)]
pub enum Replicated {
    Shard(Arc<Shard>),
    Cluster(Arc<ClusterState>),
}

pub struct Group {
    pub id: GroupId,
    pub raft: Raft,
    pub state: Replicated,
    /// The read lease: until when this replica may answer reads without
    /// asking a quorum again (see [`Group::linearize`]).
    lease: ReadLease,
}

/// How long after a quorum confirmed this replica's leadership it serves
/// reads from its own state. openraft's followers refuse to vote for
/// `election_timeout_max` (1200 ms) after the last heartbeat they accepted,
/// so no other leader can be elected before then; a quarter of that leaves
/// the rest as margin for clock-rate drift and scheduling delays between
/// the check and the read.
pub const READ_LEASE: Duration = Duration::from_millis(super::ELECTION_TIMEOUT_MAX_MS / 4);

/// How [`Group::linearize`] made sure of its leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBarrier {
    /// Within the lease of an earlier confirmation.
    Lease,
    /// A quorum confirmed it now.
    Quorum,
}

impl ReadBarrier {
    pub fn label(self) -> &'static str {
        match self {
            Self::Lease => "lease",
            Self::Quorum => "quorum",
        }
    }
}

/// The last leadership confirmation: the term it held in and when it began.
/// `refresh` lets one confirmation serve every read waiting on it.
#[derive(Debug, Default)]
struct ReadLease {
    held: std::sync::Mutex<Option<(u64, tokio::time::Instant)>>,
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("id", &self.id).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("start Raft for {group}: {message}")]
pub struct GroupStartError {
    group: GroupId,
    message: String,
}

impl Group {
    /// Starts Raft on a group whose database is open.
    pub async fn start<M: Machine>(
        id: GroupId,
        replica: ReplicaId,
        machine: Arc<M>,
        state: Replicated,
        http: HttpClient,
    ) -> Result<Self, GroupStartError> {
        let config = Arc::new(
            super::raft_config(&id.to_string())
                .validate()
                .map_err(|e| GroupStartError {
                    group: id,
                    message: e.to_string(),
                })?,
        );
        let log = LogStore::new(machine.db().clone());
        let state_machine = StateMachineStore::new(machine);
        let network = Network { http, group: id };
        let raft = Raft::new(replica, config, network, log, state_machine)
            .await
            .map_err(|e| GroupStartError {
                group: id,
                message: e.to_string(),
            })?;
        Ok(Self {
            id,
            raft,
            state,
            lease: ReadLease::default(),
        })
    }

    /// Commits `proposal` and returns what applying it answered. A
    /// follower answers `not_leader` with the leader's URL.
    pub async fn write(&self, proposal: Proposal) -> Result<Reply, ApiError> {
        match tokio::time::timeout(COMMIT_DEADLINE, self.raft.client_write(proposal)).await {
            Err(_) => Err(self.no_quorum("commit")),
            Ok(Ok(response)) => match response.data {
                Reply::Rejected {
                    status,
                    code,
                    message,
                } => Err(ApiError::new(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
                    code,
                    message,
                )),
                reply => Ok(reply),
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                Err(self.not_leader(&forward))
            }
            Ok(Err(err)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NoQuorum,
                format!("{}: {err}", self.id),
            )),
        }
    }

    /// Before a read that must see every write acknowledged before it
    /// began: makes sure this replica leads and has applied everything
    /// committed before the read began.
    ///
    /// A quorum's confirmation (openraft's read index: heartbeats to a
    /// majority, then wait for the apply position) starts a lease of
    /// [`READ_LEASE`] in that term; reads within it are answered from this
    /// replica's state without another round. That is safe because (1) no
    /// other leader can be elected during the lease (the confirming
    /// majority refuses votes for longer), and (2) a write this leader
    /// acknowledges has been applied here before the acknowledgement, and
    /// the confirmation itself waited for every earlier term's entries.
    pub async fn linearize(&self) -> Result<ReadBarrier, ApiError> {
        if self.lease_holds() {
            return Ok(ReadBarrier::Lease);
        }
        // One confirmation at a time: reads that waited here find the lease
        // renewed by the one before them. The deadline covers the wait for
        // the lock too, so reads queued behind failing confirmations (no
        // quorum) still answer within it instead of one deadline each.
        let deadline = tokio::time::Instant::now() + COMMIT_DEADLINE;
        let Ok(_refreshing) = tokio::time::timeout_at(deadline, self.lease.refresh.lock()).await
        else {
            return Err(self.no_quorum("confirm leadership"));
        };
        if self.lease_holds() {
            return Ok(ReadBarrier::Lease);
        }
        let began = tokio::time::Instant::now();
        let term = self.leading_term();
        match tokio::time::timeout_at(deadline, self.raft.ensure_linearizable()).await {
            Err(_) => Err(self.no_quorum("confirm leadership")),
            Ok(Ok(_)) => {
                if let Some(term) = term
                    && self.leading_term() == Some(term)
                {
                    *self.lease.held.lock().expect("lease lock") = Some((term, began));
                }
                Ok(ReadBarrier::Quorum)
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)))) => {
                Err(self.not_leader(&forward))
            }
            Ok(Err(err)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NoQuorum,
                format!("{}: {err}", self.id),
            )),
        }
    }

    /// Whether a read may skip the quorum round: a lease began less than
    /// [`READ_LEASE`] ago, and this replica still leads in its term.
    fn lease_holds(&self) -> bool {
        let held = *self.lease.held.lock().expect("lease lock");
        match held {
            Some((term, began)) => {
                began.elapsed() < READ_LEASE && self.leading_term() == Some(term)
            }
            None => false,
        }
    }

    /// The term, when this replica leads it (by its own view).
    fn leading_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        (metrics.current_leader == Some(metrics.id)).then_some(metrics.current_term)
    }

    /// Whether this replica leads the group right now (by its own view).
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.current_leader == Some(metrics.id)
    }

    /// A `not_leader` answer naming the leader this replica knows of.
    pub fn not_leader_here(&self) -> ApiError {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader.and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|n| n.addr.clone())
        });
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            ErrorCode::NotLeader,
            format!("this replica does not lead {}", self.id),
        )
        .with_leader(leader)
    }

    fn not_leader(&self, forward: &ForwardToLeader<ReplicaId, BasicNode>) -> ApiError {
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            ErrorCode::NotLeader,
            format!("this replica does not lead {}", self.id),
        )
        .with_leader(forward.leader_node.as_ref().map(|n| n.addr.clone()))
    }

    fn no_quorum(&self, what: &str) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NoQuorum,
            format!(
                "{}: could not {what} within {COMMIT_DEADLINE:?} (no quorum of replicas answers)",
                self.id
            ),
        )
    }

    /// This replica's view of the group, for `/status`.
    pub fn status(&self) -> GroupStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let lag = metrics
            .replication
            .as_ref()
            .map(|replication| {
                let last = metrics.last_log_index.unwrap_or(0);
                replication
                    .iter()
                    .map(|(id, matched)| (*id, matched.map(|m| last.saturating_sub(m.index))))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default();
        GroupStatus {
            group: self.id.to_string(),
            term: metrics.current_term,
            leader: metrics.current_leader,
            last_log_index: metrics.last_log_index,
            applied_index: metrics.last_applied.map(|l| l.index),
            voters: metrics.membership_config.membership().voter_ids().collect(),
            lag,
        }
    }
}
