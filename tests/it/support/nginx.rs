//! A real nginx as a child process (everything in a temp dir, killed on drop), running either the
//! shipped deploy/nginx/om-gateway-auth.conf or a site written by a test (for example the
//! `auth-url` configuration ingress-nginx generates).

use super::client;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    child: Child,
    pub address: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> String {
    for candidate in [
        "nginx",
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ] {
        let found = Command::new(candidate)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if found {
            return candidate.to_string();
        }
    }
    panic!(
        "nginx is not installed, and this test needs a real one: install the Debian package \
         `nginx-light` (apt-get install -y nginx-light) or `nginx`; CI (.ci/run) installs it"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// The shipped deploy/nginx/om-gateway-auth.conf with its three `CHANGE` addresses pointed at
/// `gateway`, `upstream` and 127.0.0.1:`port`.
pub fn shipped_site(gateway: SocketAddr, upstream: SocketAddr, port: u16) -> String {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/nginx/om-gateway-auth.conf"
    ))
    .expect("deploy/nginx/om-gateway-auth.conf");
    let mut site = shipped;
    for (from, to) in [
        ("server om-gateway:8080;", format!("server {gateway};")),
        ("server openmetadata:8585;", format!("server {upstream};")),
        ("listen 80;", format!("listen 127.0.0.1:{port};")),
    ] {
        assert!(
            site.contains(from),
            "deploy/nginx/om-gateway-auth.conf has `{from}`"
        );
        site = site.replace(from, &to);
    }
    site
}

/// What ingress-nginx generates for an Ingress with `auth-url` (its nginx.tmpl): the check
/// names the original request in `X-Original-URL $scheme://$http_host$request_uri`, and the
/// identity headers are copied from the answer.
pub fn ingress_nginx_site(gateway: SocketAddr, upstream: SocketAddr, port: u16) -> String {
    format!(
        r#"
upstream om_gateway {{ server {gateway}; }}
upstream openmetadata {{ server {upstream}; }}
server {{
    listen 127.0.0.1:{port};
    location = /_external-auth {{
        internal;
        proxy_pass http://om_gateway/_gateway/auth;
        proxy_http_version 1.1;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Forwarded-Proto "";
        proxy_set_header Host om-gateway;
        proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Sent-From "nginx-ingress-controller";
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Auth-Request-Redirect $request_uri;
    }}
    location / {{
        auth_request /_external-auth;
        auth_request_set $authHeader0 $upstream_http_x_auth_request_user;
        proxy_set_header X-Auth-Request-User $authHeader0;
        proxy_pass http://openmetadata;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }}
}}
"#
    )
}

impl Nginx {
    /// The shipped configuration in front of `gateway` and `upstream`.
    pub async fn shipped(gateway: SocketAddr, upstream: SocketAddr) -> Nginx {
        Nginx::start(|port| shipped_site(gateway, upstream, port)).await
    }

    /// nginx serving the site `site(port)` writes (it must listen on 127.0.0.1:`port` and pass
    /// the public `/api/v1/system/version` through, which readiness polls).
    pub async fn start(site: impl FnOnce(u16) -> String) -> Nginx {
        let binary = nginx_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let site = site(port);
        let root = dir.path().display();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {root}/nginx.pid;\n\
             error_log {root}/error.log info;\nevents {{ worker_connections 128; }}\n\
             http {{\n  access_log {root}/access.log;\n  client_body_temp_path {root}/body;\n\
             proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n\
             uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n{site}\n}}\n"
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config).expect("write nginx.conf");
        let child = Command::new(&binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
        let mut nginx = Nginx {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        nginx.wait_ready().await;
        nginx
    }

    /// Poll a public path through nginx until it answers, or fail with nginx's error log.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited with {status}: {}", self.error_log());
            }
            let answered = client()
                .get(format!("http://{}/api/v1/system/version", self.address))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200);
            if answered {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx not ready within 10 s: {}",
                self.error_log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}
