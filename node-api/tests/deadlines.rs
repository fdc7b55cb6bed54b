//! `NodeClient` against a node that accepts connections and never answers
//! (a hung disk behind a live process, a SIGSTOPped node): every call fails
//! within its deadline instead of waiting forever.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::ids::{BlobId, ChunkId};
use cairn_node_api::{NodeClient, NodeError};
use cairn_service::{ClientError, ClusterSecret, HttpClient, Timeouts};
use tokio::net::TcpListener;

const TIGHT: Timeouts = Timeouts {
    connect: Duration::from_secs(1),
    request: Duration::from_millis(300),
    progress: Duration::from_millis(300),
};

/// Far above the deadlines, far below "forever": the bound a test can hold.
const WITHIN: Duration = Duration::from_secs(5);

/// Accepts and holds every connection, answering nothing.
async fn silent_node() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

fn timed_out(err: &NodeError) -> bool {
    matches!(err, NodeError::Http(ClientError::Timeout { .. }))
}

#[tokio::test]
async fn every_call_to_a_silent_node_fails_within_its_deadline() {
    let url = silent_node().await;
    let http = HttpClient::new(ClusterSecret::new("s").expect("secret"), TIGHT);
    let node = NodeClient::new(http, &url);
    let chunk = ChunkId {
        blob: BlobId::random(),
        index: 0,
    };

    let started = Instant::now();
    let err = node.status().await.expect_err("no answer");
    assert!(timed_out(&err), "{err}");
    assert!(
        started.elapsed() < WITHIN,
        "status took {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let err = node.get_blocks(&chunk, None).await.expect_err("no answer");
    assert!(timed_out(&err), "{err}");
    assert!(
        started.elapsed() < WITHIN,
        "read took {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let blocks = vec![Bytes::from(vec![7u8; 4096]); 3];
    let err = node
        .put_chunk(&chunk, 4096, &blocks)
        .await
        .expect_err("no answer");
    assert!(timed_out(&err), "{err}");
    assert!(
        started.elapsed() < WITHIN,
        "write took {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let err = node.verify(&chunk, true).await.expect_err("no answer");
    assert!(timed_out(&err), "{err}");
    assert!(
        started.elapsed() < WITHIN,
        "verify took {:?}",
        started.elapsed()
    );
}
