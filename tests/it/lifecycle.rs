//! The process lifecycle, with the real binary: SIGHUP reloads (a broken file keeps the
//! old configuration), SIGTERM drains in-flight requests and exits 0, and the access log is one
//! JSON line per request on stdout that never carries a token.

use crate::support::keys::{jwks, TestKey};
use crate::support::{client, JwksServer, Upstream};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The gateway binary running with a config file in a temporary directory; its stdout and
/// stderr lines are collected as they come.
struct Process {
    child: Child,
    proxy: SocketAddr,
    admin: SocketAddr,
    config_path: std::path::PathBuf,
    output: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// A port that was free a moment ago (the child binds it; a lost race is retried by `spawn`).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn collect(reader: impl std::io::Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    });
}

impl Process {
    /// Start `om-gateway run` with `body` (the config without listen addresses), ready to serve.
    async fn spawn(body: &str) -> Process {
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let config_path = dir.path().join("gateway.yaml");
            std::fs::write(&config_path, with_listen(body, proxy, admin)).unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_om-gateway"))
                .args(["run", "--config"])
                .arg(&config_path)
                .env_remove("OM_GATEWAY_CONFIG")
                .env_remove("OM_GATEWAY_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let output = Arc::new(Mutex::new(Vec::new()));
            collect(child.stdout.take().unwrap(), output.clone());
            collect(child.stderr.take().unwrap(), output.clone());
            let mut process = Process {
                child,
                proxy,
                admin,
                config_path,
                output,
                _dir: dir,
            };
            if process.wait_ready().await {
                return process;
            }
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        panic!("the gateway binary did not become ready in three attempts");
    }

    /// Poll /readyz; false if the process exited (a port taken between our probe and its bind).
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if let Ok(response) = client().get(self.admin_url("/readyz")).send().await {
                if response.status() == 200 {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("not ready within 15 s; output: {:?}", self.output());
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    fn rewrite(&self, body: &str) {
        // Write then rename, so the reload never reads half a file.
        let staged = self.config_path.with_extension("new");
        std::fs::write(&staged, with_listen(body, self.proxy, self.admin)).unwrap();
        std::fs::rename(&staged, &self.config_path).unwrap();
    }

    async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    async fn metrics(&self) -> crate::support::prometheus::Exposition {
        crate::support::prometheus::scrape(&self.admin_url("/metrics")).await
    }

    /// The reload counters and gauge: (ok, error, last reload succeeded).
    async fn reloads(&self) -> (f64, f64, f64) {
        let metrics = self.metrics().await;
        (
            metrics.counter("om_gateway_config_reloads_total", &[("result", "ok")]),
            metrics.counter("om_gateway_config_reloads_total", &[("result", "error")]),
            metrics.get("om_gateway_config_last_reload_success", &[]),
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn with_listen(body: &str, proxy: SocketAddr, admin: SocketAddr) -> String {
    format!("server:\n  listen: {proxy}\n  adminListen: {admin}\n{body}")
}

fn config_body(upstream: &Upstream, jwks_server: &JwksServer, extra: &str) -> String {
    format!(
        "  shutdownGracePeriod: 5s\nopenmetadata:\n  trustServerKey: false\nupstream:\n  url: {}\nauthenticationConfiguration:\n  publicKeyUrls: [ \"{}\" ]\n{extra}",
        upstream.url(),
        jwks_server.url()
    )
}

async fn status_of(url: &str, token: &str) -> u16 {
    client()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Poll `check` until it holds, failing after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One SIGHUP test for the whole reload story. The broken file comes after a good reload that
/// denies everything, so "keeps the previous configuration" is told apart from "fell back to the
/// defaults" (which would allow again).
#[tokio::test]
async fn sighup_reloads_the_config_and_a_broken_file_keeps_the_old_one() {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let process = Process::spawn(&config_body(&upstream, &jwks_server, "")).await;
    let token = key.tokens().personal();
    let url = process.url("/api/v1/tables");
    assert_eq!(status_of(&url, &token).await, 200);
    assert_eq!(process.reloads().await, (0.0, 0.0, 1.0));

    // A good file applies.
    process.rewrite(&config_body(
        &upstream,
        &jwks_server,
        "defaultRoute: { deny: true }\n",
    ));
    process.signal("HUP");
    eventually(Duration::from_secs(5), "the reload", || async {
        status_of(&url, &token).await == 403
    })
    .await;
    assert_eq!(process.reloads().await, (1.0, 0.0, 1.0));

    // A broken file is refused, said so in the log and the metrics, and the deny-all stays.
    std::fs::write(&process.config_path, "server: [ this is not\n  valid: yaml").unwrap();
    process.signal("HUP");
    eventually(
        Duration::from_secs(5),
        "the failed reload being counted",
        || async { process.reloads().await.1 >= 1.0 },
    )
    .await;
    assert_eq!(process.reloads().await, (1.0, 1.0, 0.0));
    assert!(
        process
            .output()
            .iter()
            .any(|line| line.contains("reload failed; keeping the previous configuration")),
        "{:?}",
        process.output()
    );
    assert_eq!(
        status_of(&url, &token).await,
        403,
        "the previous config stays"
    );

    // And the next good file still applies.
    process.rewrite(&config_body(&upstream, &jwks_server, ""));
    process.signal("HUP");
    eventually(Duration::from_secs(5), "the second reload", || async {
        status_of(&url, &token).await == 200
    })
    .await;
    assert_eq!(process.reloads().await, (2.0, 1.0, 1.0));
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_0() {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    upstream.update(|b| b.delay = Duration::from_secs(1));
    let mut process = Process::spawn(&config_body(&upstream, &jwks_server, "")).await;
    let token = key.tokens().personal();
    let in_flight = tokio::spawn({
        let url = process.url("/api/v1/tables");
        let token = token.clone();
        async move {
            let response = client().get(url).bearer_auth(token).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    });
    eventually(
        Duration::from_secs(5),
        "the request reaching the upstream",
        || async { !upstream.received().is_empty() },
    )
    .await;
    process.signal("TERM");
    eventually(Duration::from_secs(2), "/readyz turning 503", || async {
        match client().get(process.admin_url("/readyz")).send().await {
            Ok(response) => response.status() == 503,
            Err(_) => false,
        }
    })
    .await;
    eventually(
        Duration::from_secs(2),
        "new connections being refused",
        || async { tokio::net::TcpStream::connect(process.proxy).await.is_err() },
    )
    .await;
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "the in-flight request completes: {body}");
    let exit = process.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(exit.code(), Some(0), "output: {:?}", process.output());
}

fn access_lines(output: &[String]) -> Vec<Value> {
    output
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "om_gateway::access")
        .collect()
}

#[tokio::test]
async fn access_log_is_one_json_line_per_request_and_never_holds_a_token() {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let mut process = Process::spawn(&config_body(&upstream, &jwks_server, "")).await;
    let good = key.tokens().personal();
    let forged = TestKey::rsa_b().with_kid("key-a").tokens().personal();
    let url = process.url("/api/v1/tables");
    assert_eq!(status_of(&url, &good).await, 200);
    assert_eq!(status_of(&url, &forged).await, 401);
    let anonymous = client().get(&url).send().await.unwrap().status();
    assert_eq!(anonymous, 401);
    // Stop the process so every buffered line is out.
    process.signal("TERM");
    process.wait_exit(Duration::from_secs(10)).await;
    // The collector threads finish at EOF; give them a moment with a bounded poll.
    eventually(Duration::from_secs(2), "three access lines", || async {
        access_lines(&process.output()).len() >= 3
    })
    .await;
    let output = process.output();
    let lines = access_lines(&output);
    assert_eq!(lines.len(), 3, "one line per request: {lines:?}");
    let allowed = &lines[0];
    for field in [
        "timestamp",
        "request_id",
        "method",
        "route",
        "status",
        "latency_ms",
        "reason",
    ] {
        assert!(
            !allowed[field].is_null(),
            "field {field} missing: {allowed}"
        );
    }
    assert_eq!(allowed["status"], 200);
    assert_eq!(allowed["method"], "GET");
    assert_eq!(allowed["principal"], "alice");
    assert_eq!(allowed["reason"], "allowed");
    assert!(allowed["upstream_ms"].is_number());
    let fingerprint = allowed["token"].as_str().expect("token fingerprint");
    assert!(fingerprint.len() <= 16 && fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(lines[1]["status"], 401);
    assert!(
        lines[1]["token"].is_string(),
        "a refused token is logged by fingerprint"
    );
    assert_eq!(lines[2]["status"], 401);
    let everything = output.join("\n");
    for token in [&good, &forged] {
        assert!(!everything.contains(token.as_str()), "a token was logged");
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !everything.contains(signature),
            "a token signature was logged"
        );
    }
}

#[tokio::test]
async fn access_log_can_be_switched_off() {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let body = format!(
        "  accessLog: false\n{}",
        config_body(&upstream, &jwks_server, "")
    );
    let mut process = Process::spawn(&body).await;
    assert_eq!(
        status_of(&process.url("/api/v1/tables"), &key.tokens().personal()).await,
        200
    );
    process.signal("TERM");
    process.wait_exit(Duration::from_secs(10)).await;
    eventually(Duration::from_secs(2), "the shutdown line", || async {
        process.output().iter().any(|line| line.contains("stopped"))
    })
    .await;
    assert!(access_lines(&process.output()).is_empty());
}

/// The access lines are batched per worker (`access_log`): more than a batch of them all come
/// out while the process runs, once each, in the order the requests were answered.
#[tokio::test]
async fn access_lines_come_out_while_running_once_each_in_request_order() {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let mut process = Process::spawn(&config_body(&upstream, &jwks_server, "")).await;
    let token = key.tokens().personal();
    let url = process.url("/api/v1/tables");
    let client = client();
    let mut answered = Vec::new();
    for _ in 0..150 {
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let id = response.headers()["x-request-id"].to_str().unwrap();
        answered.push(id.to_string());
    }
    let logged_ids = |output: &[String]| -> Vec<String> {
        access_lines(output)
            .iter()
            .map(|line| line["request_id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    eventually(
        Duration::from_secs(5),
        "150 access lines before shutdown",
        || async { logged_ids(&process.output()).len() >= 150 },
    )
    .await;
    assert_eq!(logged_ids(&process.output()), answered);
    process.signal("TERM");
    process.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(logged_ids(&process.output()), answered, "no line twice");
}
