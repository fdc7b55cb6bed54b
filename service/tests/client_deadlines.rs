//! The shared HTTP client helper against peers that misbehave the way real
//! ones do: a process that accepts connections and never answers (hung
//! disk, SIGSTOP), one that stops mid-body, one that stops reading an
//! upload, and a healthy peer fed by a slow source (which must not be cut).

use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_service::{ClientError, ClusterSecret, HttpClient, Timeouts};
use futures_util::StreamExt;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TIGHT: Timeouts = Timeouts {
    connect: Duration::from_secs(1),
    request: Duration::from_millis(400),
    progress: Duration::from_millis(400),
};

/// Generous bound for "failed within its deadline" (CI machines are slow;
/// what matters is that the call does not hang).
const WITHIN: Duration = Duration::from_secs(5);

fn client() -> HttpClient {
    HttpClient::new(ClusterSecret::new("s").expect("secret"), TIGHT)
}

/// Accepts every connection and then does `behave` with it (never closing
/// it unless `behave` returns), counting connections.
async fn peer<F, Fut>(behave: F) -> (String, tokio::sync::watch::Receiver<usize>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (count_tx, count_rx) = tokio::sync::watch::channel(0usize);
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            count_tx.send_modify(|n| *n += 1);
            held.push(tokio::spawn(behave(socket)));
        }
    });
    (url, count_rx)
}

async fn silent(socket: tokio::net::TcpStream) {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    drop(socket);
}

fn assert_timeout(err: &ClientError, phase: &str) {
    assert!(
        matches!(err, ClientError::Timeout { phase: p, .. } if *p == phase),
        "expected a {phase} timeout, got {err}"
    );
    assert!(err.is_timeout() && err.is_unreachable());
}

#[tokio::test]
async fn a_peer_that_accepts_and_never_answers_fails_a_small_call_in_time() {
    let (url, accepted) = peer(silent).await;
    let started = Instant::now();
    let err = client()
        .call::<serde_json::Value>(Method::GET, &format!("{url}/status"), &[], None::<&()>)
        .await
        .expect_err("no answer");
    assert!(started.elapsed() < WITHIN, "took {:?}", started.elapsed());
    assert_timeout(&err, "response");
    assert_eq!(*accepted.borrow(), 1, "the call reached the peer");
}

#[tokio::test]
async fn a_download_that_stalls_midway_fails_on_progress() {
    let (url, _) = peer(|mut socket| async move {
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
            .await;
        let _ = socket.write_all(&[7u8; 1000]).await;
        silent(socket).await;
    })
    .await;
    let http = client();
    let response = http
        .send(http.request(Method::GET, &url))
        .await
        .expect("headers arrive");
    let mut body = Box::pin(http.progress_stream(&url, response));
    let mut received = 0;
    let started = Instant::now();
    let err = loop {
        match body
            .next()
            .await
            .expect("an error ends the stream, not silence")
        {
            Ok(piece) => received += piece.len(),
            Err(err) => break err,
        }
    };
    assert!(started.elapsed() < WITHIN, "took {:?}", started.elapsed());
    assert_eq!(received, 1000, "what arrived was delivered first");
    assert_timeout(&err, "response body progress");
    assert!(
        body.next().await.is_none(),
        "the stream ends after its error"
    );
}

#[tokio::test]
async fn an_upload_the_peer_stops_reading_fails_on_progress() {
    // Reads the request head, then nothing: the socket buffers fill and the
    // upload cannot make progress.
    let (url, _) = peer(|mut socket| async move {
        let mut head = [0u8; 1024];
        let _ = socket.read(&mut head).await;
        silent(socket).await;
    })
    .await;
    let http = client();
    let pieces = futures_util::stream::iter(
        (0..4096).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 64 * 1024]))),
    );
    let started = Instant::now();
    let err = http
        .send_stream(http.request(Method::PUT, &url), pieces)
        .await
        .expect_err("the peer never reads");
    assert!(started.elapsed() < WITHIN, "took {:?}", started.elapsed());
    assert_timeout(&err, "request body progress");
}

#[tokio::test]
async fn a_small_upload_without_an_answer_fails_on_the_request_deadline() {
    let (url, _) = peer(silent).await;
    let http = client();
    let pieces = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"tiny"))]);
    let err = http
        .send_stream(http.request(Method::PUT, &url), pieces)
        .await
        .expect_err("no answer");
    assert_timeout(&err, "response");
}

#[tokio::test]
async fn a_slow_source_is_not_the_peers_stall() {
    // A real server that reads the whole body and answers 200.
    let app = axum::Router::new().route(
        "/",
        axum::routing::put(|body: Bytes| async move { body.len().to_string() }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = client();
    // Six pieces, each 200 ms apart: 1.2 s in all, three times the progress
    // deadline between two pieces would be cut if the source counted.
    let pieces = futures_util::stream::unfold(0, |i| async move {
        if i == 6 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from_static(b"0123456789")),
            i + 1,
        ))
    });
    let response = http
        .send_stream(http.request(Method::PUT, &url), pieces)
        .await
        .expect("a slow client is served");
    assert_eq!(response.text().await.expect("body"), "60");
}

#[tokio::test]
async fn error_answers_carry_their_typed_code() {
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            cairn_service::ApiError::new(
                axum::http::StatusCode::CONFLICT,
                cairn_service::ErrorCode::WrongShard,
                "moved",
            )
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let err = client()
        .call::<serde_json::Value>(Method::GET, &url, &[], None::<&()>)
        .await
        .expect_err("409");
    assert_eq!(err.code(), Some(cairn_service::ErrorCode::WrongShard));
    assert_eq!(err.status(), Some(409));
    assert!(!err.is_unreachable());
}
