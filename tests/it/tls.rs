//! TLS: termination with rustls (TLS 1.2 and 1.3 only, h2 by ALPN), certificate files
//! reloaded for new connections while open ones keep theirs, and a TLS upstream verified with a
//! configured CA file.
//!
//! Fixtures in tests/fixtures/tls were made with openssl: a CA (`ca.pem`), and `server-one` /
//! `server-two` certificates for 127.0.0.1 and localhost signed by it (`openssl req -x509` for
//! the CA, `openssl req -newkey` + `openssl x509 -req -extfile` with subjectAltName for each).

use crate::support::keys::{fixture, jwks, TestKey};
use crate::support::{JwksServer, TestGateway, Upstream};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Copy a server certificate pair from the fixtures into `dir` as cert.pem / key.pem.
fn install_cert(dir: &Path, name: &str) {
    // Write then rename, as cert-manager and kubelet do, so a reader never sees half a file.
    for (from, to) in [
        (format!("{name}.pem"), "cert.pem"),
        (format!("{name}.key"), "key.pem"),
    ] {
        let staged = dir.join(format!("{to}.new"));
        std::fs::copy(fixture(&format!("tls/{from}")), &staged).unwrap();
        std::fs::rename(&staged, dir.join(to)).unwrap();
    }
}

async fn tls_gateway(dir: &Path, upstream: &str, jwks_url: &str) -> TestGateway {
    let yaml = format!(
        "server:\n  tls:\n    certFile: {}\n    keyFile: {}\n    reloadInterval: 100ms\nupstream:\n  url: {upstream}\nauthenticationConfiguration:\n  publicKeyUrls: [ \"{jwks_url}\" ]\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display(),
    );
    TestGateway::start_ready(&yaml).await
}

fn client_tls(
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(fixture("tls/ca.pem")).unwrap();
    for certificate in rustls_pemfile_certs(&ca) {
        roots.add(certificate).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn https_client(config: rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The subject of the certificate the server presented on this response's connection.
fn peer_subject(response: &reqwest::Response) -> String {
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("TLS info");
    let der = info.peer_certificate().expect("peer certificate");
    let (_, certificate) = x509_parser::parse_x509_certificate(der).unwrap();
    certificate.subject().to_string()
}

struct Keys {
    jwks: JwksServer,
}

async fn keys() -> Keys {
    Keys {
        jwks: JwksServer::start(jwks(&[TestKey::rsa_a().jwk()])).await,
    }
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_served_and_alpn_picks_the_http_version() {
    let keys = keys().await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    install_cert(dir.path(), "server-one");
    let gateway = tls_gateway(dir.path(), &upstream.url(), &keys.jwks.url()).await;
    let url = format!(
        "https://127.0.0.1:{}/api/v1/system/version",
        gateway.proxy().port()
    );
    let cases: [(
        &'static rustls::SupportedProtocolVersion,
        &[&[u8]],
        http::Version,
    ); 3] = [
        (
            &rustls::version::TLS13,
            &[b"h2", b"http/1.1"],
            http::Version::HTTP_2,
        ),
        (
            &rustls::version::TLS12,
            &[b"h2", b"http/1.1"],
            http::Version::HTTP_2,
        ),
        (
            &rustls::version::TLS13,
            &[b"http/1.1"],
            http::Version::HTTP_11,
        ),
    ];
    for (version, alpn, expected) in cases {
        let client = https_client(client_tls(&[version], alpn));
        let response = client.get(&url).send().await.expect("TLS request");
        assert_eq!(response.status(), 200, "{version:?}");
        assert_eq!(
            response.version(),
            expected,
            "{version:?} with ALPN {alpn:?}"
        );
        assert!(peer_subject(&response).contains("CN=server-one"));
    }
    assert_eq!(
        upstream.last().header("x-forwarded-proto").as_deref(),
        Some("https")
    );
}

/// A ClientHello written by hand (no rustls client can speak TLS 1.1) with `legacy_version`
/// and no supported_versions extension: 0x0302 is a TLS 1.1 hello, 0x0303 the same hello as
/// TLS 1.2. It offers a suite, groups and signature schemes the gateway accepts for TLS 1.2, so
/// the version is the only reason to refuse it.
fn client_hello(legacy_version: [u8; 2]) -> Vec<u8> {
    let mut body = legacy_version.to_vec();
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
                  // ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-AES256-GCM-SHA384, and two CBC suites.
    body.extend_from_slice(&[0x00, 0x08, 0xc0, 0x2f, 0xc0, 0x30, 0xc0, 0x13, 0x00, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let extensions: &[(u16, &[u8])] = &[
        (0x000a, &[0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]), // groups: x25519, secp256r1
        (0x000b, &[0x01, 0x00]),                         // EC point formats: uncompressed
        (0x000d, &[0x00, 0x06, 0x08, 0x04, 0x04, 0x01, 0x04, 0x03]), // signature schemes
    ];
    let mut encoded = Vec::new();
    for (kind, data) in extensions {
        encoded.extend_from_slice(&kind.to_be_bytes());
        encoded.extend_from_slice(&(data.len() as u16).to_be_bytes());
        encoded.extend_from_slice(data);
    }
    body.extend_from_slice(&(encoded.len() as u16).to_be_bytes());
    body.extend_from_slice(&encoded);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(body.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Send a hello on a fresh connection; return the bytes the server wrote until it closed, or
/// `None` if the connection was still open after 5 s (the gateway's own handshake deadline,
/// `server.headerReadTimeout`, is 10 s by default, so a gateway that hangs is told apart).
async fn answer_to(gateway: &TestGateway, hello: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(gateway.proxy()).await.unwrap();
    stream.write_all(hello).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(answer),
            Ok(Ok(read)) => answer.extend_from_slice(&buffer[..read]),
        }
    }
}

/// Send a hello and return the first record the server answers with (5 s at most).
async fn first_record(gateway: &TestGateway, hello: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(gateway.proxy()).await.unwrap();
    stream.write_all(hello).await.unwrap();
    let mut header = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut header))
        .await
        .expect("an answer within 5 s")
        .expect("a record header");
    let mut record = header.to_vec();
    let mut rest = vec![0u8; u16::from_be_bytes([header[3], header[4]]) as usize];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut rest))
        .await
        .expect("the whole record within 5 s")
        .expect("the record body");
    record.extend_from_slice(&rest);
    record
}

#[tokio::test]
async fn a_tls_1_1_client_is_refused() {
    let keys = keys().await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    install_cert(dir.path(), "server-one");
    let gateway = tls_gateway(dir.path(), &upstream.url(), &keys.jwks.url()).await;

    // Positive control: the same hello as TLS 1.2 gets a ServerHello, so the refusal below is
    // about the version and not a hello the gateway cannot read.
    let record = first_record(&gateway, &client_hello([0x03, 0x03])).await;
    assert_eq!(
        (record[0], record.get(5).copied()),
        (0x16, Some(0x02)),
        "a TLS 1.2 hello should get a ServerHello handshake record, got {record:02x?}"
    );

    // TLS 1.1: a fatal protocol_version alert (or at least a close), within the deadline;
    // never a ServerHello, never a connection left hanging.
    let answer = answer_to(&gateway, &client_hello([0x03, 0x02]))
        .await
        .expect("the gateway left a TLS 1.1 hello hanging instead of refusing it");
    assert!(
        answer.is_empty() || answer == [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46],
        "a TLS 1.1 hello should get a fatal protocol_version alert or a close, got {answer:02x?}"
    );
}

#[tokio::test]
async fn rotated_certificate_is_served_to_new_connections_while_open_ones_keep_working() {
    let keys = keys().await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    install_cert(dir.path(), "server-one");
    let gateway = tls_gateway(dir.path(), &upstream.url(), &keys.jwks.url()).await;
    let url = format!(
        "https://127.0.0.1:{}/api/v1/system/version",
        gateway.proxy().port()
    );
    let tls = client_tls(&[&rustls::version::TLS13], &[b"http/1.1"]);
    // A keep-alive connection opened before the rotation.
    let old_client = https_client(tls.clone());
    let response = old_client.get(&url).send().await.unwrap();
    assert!(peer_subject(&response).contains("CN=server-one"));
    response.bytes().await.unwrap();

    // Keep the modification time visibly different on coarse-grained file systems.
    tokio::time::sleep(Duration::from_millis(20)).await;
    install_cert(dir.path(), "server-two");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = https_client(tls.clone());
        let response = fresh.get(&url).send().await.unwrap();
        if peer_subject(&response).contains("CN=server-two") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The old connection still works, and is still the one with the old certificate.
    let response = old_client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(peer_subject(&response).contains("CN=server-one"));
}

#[tokio::test]
async fn a_broken_certificate_file_keeps_the_previous_certificate() {
    let dir = tempfile::tempdir().unwrap();
    install_cert(dir.path(), "server-one");
    let tls = om_gateway::tls::ReloadingTls::load(
        &dir.path().join("cert.pem"),
        &dir.path().join("key.pem"),
    )
    .unwrap();
    let before = tls.acceptor();
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    tls.reload_if_changed();
    // The acceptor still carries a usable configuration: the same one as before.
    assert!(Arc::ptr_eq(before.config(), tls.acceptor().config()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    install_cert(dir.path(), "server-two");
    tls.reload_if_changed();
    assert!(!Arc::ptr_eq(before.config(), tls.acceptor().config()));
}

/// A TLS upstream with the server-one certificate that answers 200 to everything.
async fn tls_upstream() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let config = om_gateway::tls::server_config(
        &fixture("tls/server-one.pem"),
        &fixture("tls/server-one.key"),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        bytes::Bytes::from_static(b"{\"tls\":true}"),
                    )))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, task)
}

#[tokio::test]
async fn a_tls_upstream_is_verified_with_the_configured_ca_file() {
    let keys = keys().await;
    let (address, _task) = tls_upstream().await;
    let base = format!(
        "upstream:\n  url: https://localhost:{}\n  connectTimeout: 2s\n",
        address.port()
    );
    let auth = format!(
        "authenticationConfiguration:\n  publicKeyUrls: [ \"{}\" ]\n",
        keys.jwks.url()
    );
    let with_ca = format!(
        "{base}  tls:\n    caFile: {}\n{auth}",
        fixture("tls/ca.pem").display()
    );
    let gateway = TestGateway::start_ready(&with_ca).await;
    let response = crate::support::client()
        .get(gateway.url("/api/v1/system/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "{\"tls\":true}");
    // Without the CA the upstream's certificate is not trusted: 502, nothing proxied.
    let gateway = TestGateway::start_ready(&format!("{base}{auth}")).await;
    let response = crate::support::client()
        .get(gateway.url("/api/v1/system/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
}

/// A TLS connection the accepting worker hands to another (`server::listen::Balancer`) is
/// handshaken and served there, over HTTP/2 and HTTP/1.1 alike: four clients, each its own
/// connection, end up two per worker and every request is answered.
#[tokio::test]
async fn tls_connections_spread_over_two_workers_are_served_on_either() {
    let keys = keys().await;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    install_cert(dir.path(), "server-one");
    let yaml = format!(
        "server:\n  workers: 2\n  tls:\n    certFile: {}\n    keyFile: {}\nupstream:\n  url: {}\nauthenticationConfiguration:\n  publicKeyUrls: [ \"{}\" ]\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display(),
        upstream.url(),
        keys.jwks.url(),
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let url = format!(
        "https://127.0.0.1:{}/api/v1/system/version",
        gateway.proxy().port()
    );
    let mut clients = Vec::new();
    for alpn in [
        &[b"h2".as_slice()][..],
        &[b"http/1.1"],
        &[b"h2"],
        &[b"http/1.1"],
    ] {
        let client = https_client(client_tls(&[&rustls::version::TLS13], alpn));
        for _ in 0..2 {
            let response = client.get(&url).send().await.expect("TLS request");
            assert_eq!(response.status(), 200, "ALPN {alpn:?}");
        }
        clients.push(client);
    }
    let metrics = gateway.metrics().await;
    let per_worker: Vec<f64> = ["0", "1"]
        .iter()
        .map(|worker| metrics.get("om_gateway_worker_connections", &[("worker", worker)]))
        .collect();
    assert_eq!(per_worker, vec![2.0, 2.0]);
    let served = upstream
        .received()
        .iter()
        .filter(|request| request.uri == "/api/v1/system/version")
        .count();
    assert_eq!(served, 8);
}
