//! Mutual TLS between Cairn processes, with real sockets: a server on a
//! `ServiceListener` with a cluster identity answers a client holding a
//! certificate from the same CA, and nothing else (no certificate, another
//! CA's, a name the certificate does not carry, plain HTTP); a client with
//! an identity refuses `http://` peers; a silent TCP client does not hold up
//! the handshakes of others.

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use cairn_service::tls::ca::ClusterCa;
use cairn_service::tls::{ClusterTls, ServiceListener, TlsFiles};
use cairn_service::{ClusterSecret, HttpClient, Timeouts};
use reqwest::Method;
use tokio::net::TcpListener;

fn identity(ca: &ClusterCa, dir: &Path, name: &str, addresses: &[&str]) -> ClusterTls {
    let names: Vec<String> = addresses.iter().map(|a| (*a).to_owned()).collect();
    ca.issue(name, &names)
        .expect("issue")
        .write(dir, name)
        .expect("write");
    ClusterTls::load(&TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    })
    .expect("load identity")
}

fn secret(tls: Option<ClusterTls>) -> ClusterSecret {
    ClusterSecret::new("mutual-tls-test")
        .expect("secret")
        .with_tls(tls)
}

/// Serves `GET /hello` on 127.0.0.1 with `tls`'s server side; its port.
async fn serve(tls: &ClusterTls) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let listener = ServiceListener::new(listener, Some(tls.server_config())).expect("listener");
    assert!(listener.is_tls());
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

fn client(tls: Option<ClusterTls>) -> HttpClient {
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_secs(5),
        progress: Duration::from_secs(5),
    };
    HttpClient::new(secret(tls), timeouts)
}

async fn hello(client: &HttpClient, url: &str) -> Result<String, String> {
    let response = client
        .send(client.request(Method::GET, &format!("{url}/hello")))
        .await
        .map_err(|e| format!("{e:?}"))?;
    response.text().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn only_holders_of_a_certificate_from_the_cluster_ca_are_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::generate().expect("CA");
    ca.write(dir.path()).expect("write CA");
    let server = identity(&ca, dir.path(), "node", &["127.0.0.1", "localhost"]);
    let member = identity(&ca, dir.path(), "gateway", &["127.0.0.1"]);
    let port = serve(&server).await;
    let url = format!("https://127.0.0.1:{port}");

    assert_eq!(
        hello(&client(Some(member.clone())), &url).await.as_deref(),
        Ok("hello")
    );
    // The DNS name on the certificate works too.
    assert_eq!(
        hello(
            &client(Some(member.clone())),
            &format!("https://localhost:{port}")
        )
        .await
        .as_deref(),
        Ok("hello")
    );

    // A member of another cluster: its CA did not issue the server's
    // certificate, and the server does not trust its CA.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other_ca = ClusterCa::generate().expect("CA");
    other_ca.write(other_dir.path()).expect("write CA");
    let stranger = identity(&other_ca, other_dir.path(), "gateway", &["127.0.0.1"]);
    let refused = hello(&client(Some(stranger)), &url).await;
    assert!(refused.is_err(), "a stranger was answered: {refused:?}");

    // No client certificate at all (a plain client trusting the CA).
    let anonymous = rustls_client_without_certificate(dir.path());
    let refused = anonymous.get(format!("{url}/hello")).send().await;
    let refused = match refused {
        Ok(response) => response.text().await.map(|_| ()),
        Err(err) => Err(err),
    };
    assert!(refused.is_err(), "answered a client with no certificate");

    // Plain HTTP to the TLS port.
    let plain = client(None);
    assert!(
        hello(&plain, &format!("http://127.0.0.1:{port}"))
            .await
            .is_err()
    );
}

fn rustls_client_without_certificate(dir: &Path) -> reqwest::Client {
    let config = cairn_service::tls::client_trusting(&dir.join("ca.pem")).expect("client config");
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_certificate_must_name_the_address_dialled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::generate().expect("CA");
    ca.write(dir.path()).expect("write CA");
    // Issued for another host: a member that dials 127.0.0.1 must refuse it.
    let server = identity(&ca, dir.path(), "node", &["10.9.8.7"]);
    let member = identity(&ca, dir.path(), "gateway", &["127.0.0.1"]);
    let port = serve(&server).await;
    let refused = hello(&client(Some(member)), &format!("https://127.0.0.1:{port}")).await;
    assert!(
        refused.is_err(),
        "a certificate for another address was accepted"
    );
}

#[tokio::test]
async fn a_client_with_an_identity_refuses_plain_http_peers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::generate().expect("CA");
    ca.write(dir.path()).expect("write CA");
    let member = identity(&ca, dir.path(), "gateway", &["127.0.0.1"]);
    // A plain server that would answer anyone.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<()>();
    let app = Router::new().route(
        "/hello",
        get(move || {
            let _ = seen_tx.send(());
            async { "hello" }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let refused = hello(&client(Some(member)), &format!("http://127.0.0.1:{port}")).await;
    assert!(refused.is_err(), "sent the secret to an http:// peer");
    assert!(
        seen.try_recv().is_err(),
        "the plain peer received a request"
    );
}

#[tokio::test]
async fn a_silent_connection_does_not_hold_up_other_handshakes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::generate().expect("CA");
    ca.write(dir.path()).expect("write CA");
    let server = identity(&ca, dir.path(), "node", &["127.0.0.1"]);
    let member = identity(&ca, dir.path(), "gateway", &["127.0.0.1"]);
    let port = serve(&server).await;
    // Connects and says nothing (a port scanner, a stalled peer).
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        hello(&client(Some(member)), &format!("https://127.0.0.1:{port}")),
    )
    .await
    .expect("held up by a silent connection");
    assert_eq!(answered.as_deref(), Ok("hello"));
}

#[tokio::test]
async fn a_ca_loaded_again_issues_certificates_the_first_ones_trust() {
    // `cairn dev --tls` restarts (and a later `cairn cluster` issuing a
    // certificate) load the CA from its files instead of making a new one.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ClusterCa::generate().expect("CA");
    ca.write(dir.path()).expect("write CA");
    let member = identity(&ca, dir.path(), "gateway", &["127.0.0.1"]);
    let reloaded = ClusterCa::load(dir.path()).expect("load CA");
    assert_eq!(reloaded.cert_pem(), ca.cert_pem());
    let server = identity(&reloaded, dir.path(), "node", &["127.0.0.1"]);
    let port = serve(&server).await;
    assert_eq!(
        hello(&client(Some(member)), &format!("https://127.0.0.1:{port}"))
            .await
            .as_deref(),
        Ok("hello")
    );
    // The CA key is readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("ca.key"))
        .expect("ca.key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "ca.key is readable by others: {mode:o}");
}
