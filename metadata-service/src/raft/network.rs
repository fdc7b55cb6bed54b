//! Raft RPCs between replicas: `POST {replica}/raft/{group}/{append,vote,snapshot}?to={id}`
//! with JSON bodies, through the internal HTTP client (cluster secret,
//! deadlines). Every group of a process shares one connection pool. `to`
//! names the replica the sender means: a replica refuses a message meant
//! for another (a stale or reused address) instead of acting on it.

use cairn_meta_api::shard_map::GroupId;
use cairn_service::{ClientError, HttpClient};
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ReplicaId, TypeConfig};

/// Makes a [`Peer`] per replica of one group.
#[derive(Debug, Clone)]
pub struct Network {
    pub http: HttpClient,
    pub group: GroupId,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: ReplicaId, node: &BasicNode) -> Self::Network {
        Peer {
            http: self.http.clone(),
            target,
            base: format!("{}/raft/{}", node.addr.trim_end_matches('/'), self.group),
        }
    }
}

/// One replica of one group, as the local replica talks to it.
#[derive(Debug)]
pub struct Peer {
    http: HttpClient,
    target: ReplicaId,
    base: String,
}

impl Peer {
    async fn rpc<Req, Resp, E>(
        &self,
        what: &str,
        request: &Req,
    ) -> Result<Resp, RPCError<ReplicaId, BasicNode, RaftError<ReplicaId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let url = format!("{}/{what}", self.base);
        let to = [("to", self.target.to_string())];
        let answer: Result<Result<Resp, RaftError<ReplicaId, E>>, ClientError> =
            self.http.call(Method::POST, &url, &to, Some(request)).await;
        match answer {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            // A refused connection or a silent peer: openraft backs off.
            Err(err) if err.is_unreachable() => Err(RPCError::Unreachable(Unreachable::new(&err))),
            Err(err) => Err(RPCError::Network(NetworkError::new(&err))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        AppendEntriesResponse<ReplicaId>,
        RPCError<ReplicaId, BasicNode, RaftError<ReplicaId>>,
    > {
        self.rpc("append", &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<ReplicaId>,
        RPCError<ReplicaId, BasicNode, RaftError<ReplicaId, InstallSnapshotError>>,
    > {
        self.rpc("snapshot", &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<ReplicaId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<ReplicaId>, RPCError<ReplicaId, BasicNode, RaftError<ReplicaId>>> {
        self.rpc("vote", &rpc).await
    }
}
