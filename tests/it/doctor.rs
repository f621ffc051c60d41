//! `om-gateway doctor`: the real binary against real key endpoints and upstream, and
//! the lint rules it applies as pure functions.

use crate::support::keys::{fixture, jwks, TestKey};
use crate::support::{JwksServer, Upstream};
use om_gateway::cli::{judge_clock_skew, lint_key_url, parse_http_date};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Doctor {
    code: Option<i32>,
    stdout: String,
}

/// Run `om-gateway doctor` on a config trusting `key_urls` in front of `upstream`. The binary
/// runs on a blocking thread so this test's servers keep answering it.
async fn doctor(upstream: &Upstream, key_urls: &[String]) -> Doctor {
    doctor_with_env(upstream, key_urls, &[]).await
}

/// `doctor`, with `env` set for the binary (the feed key variables are always cleared first).
async fn doctor_with_env(upstream: &Upstream, key_urls: &[String], env: &[(&str, &str)]) -> Doctor {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("gateway.yaml");
    let urls: Vec<String> = key_urls.iter().map(|u| format!("\"{u}\"")).collect();
    std::fs::write(
        &config,
        format!(
            "upstream:\n  url: {}\nauthenticationConfiguration:\n  publicKeyUrls: [ {} ]\njwks:\n  fetchTimeout: 2s\nopenmetadata:\n  trustServerKey: false\n",
            upstream.url(),
            urls.join(", ")
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_om-gateway"))
            .args(["doctor", "--config"])
            .arg(&config)
            .env_remove("AUTHENTICATION_PUBLIC_KEYS")
            .env_remove("OM_GATEWAY_CONFIG")
            .env_remove("OM_GATEWAY_UPSTREAM_URL")
            .env_remove("OM_GATEWAY_FEED_KEY")
            .env_remove("OM_GATEWAY_FEED_KEY_FILE")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    Doctor {
        code: output.status.code(),
        stdout: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn warnings(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("WARNING"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_source_passes_and_its_kids_are_listed() {
    let key = TestKey::rsa_a();
    let source = JwksServer::start(jwks(&[key.jwk(), TestKey::rsa_b().jwk()])).await;
    let upstream = Upstream::start().await;
    let report = doctor(&upstream, &[source.url()]).await;
    assert_eq!(report.code, Some(0), "{}", report.stdout);
    let line = report
        .stdout
        .lines()
        .find(|l| l.starts_with("ok") && l.contains(&source.url()) && l.contains("keys"))
        .unwrap_or_else(|| panic!("no line for the source:\n{}", report.stdout));
    assert!(
        line.contains("2 keys") && line.contains("key-a") && line.contains("key-b"),
        "{line}"
    );
    assert!(report.stdout.contains("reachable"), "{}", report.stdout);
    assert!(
        !report.stdout.contains("default development key"),
        "{}",
        report.stdout
    );
    assert_eq!(source.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_broken_source_is_a_problem() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let refused_url = format!("http://{refused}/jwks.json");
    let good = JwksServer::start(jwks(&[TestKey::rsa_a().jwk()])).await;
    let upstream = Upstream::start().await;
    let report = doctor(&upstream, &[refused_url.clone(), good.url()]).await;
    assert_eq!(report.code, Some(1), "{}", report.stdout);
    let problem = report
        .stdout
        .lines()
        .find(|l| l.starts_with("PROBLEM"))
        .unwrap_or_else(|| panic!("{}", report.stdout));
    assert!(problem.contains(&refused_url), "{problem}");
    assert!(report.stdout.contains("1 problems"), "{}", report.stdout);

    let short = JwksServer::start(jwks(&[])).await;
    let report = doctor(&upstream, &[short.url()]).await;
    assert_eq!(report.code, Some(1), "an empty key set: {}", report.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetadata_default_key_is_recognised_under_any_kid() {
    let default_jwks = std::fs::read_to_string(fixture("openmetadata-default-jwks.json")).unwrap();
    let as_published = JwksServer::start(default_jwks.clone()).await;
    let renamed = JwksServer::start(
        default_jwks.replace("Gb389a-9f76-gdjs-a92j-0242bk94356", "innocent-looking-kid"),
    )
    .await;
    let upstream = Upstream::start().await;
    let report = doctor(&upstream, &[as_published.url(), renamed.url()]).await;
    assert_eq!(report.code, Some(0), "warnings only: {}", report.stdout);
    let about_default: Vec<&str> = warnings(&report.stdout)
        .into_iter()
        .filter(|w| w.contains("default development key"))
        .collect();
    assert_eq!(about_default.len(), 2, "{}", report.stdout);
    assert!(about_default.iter().any(
        |w| w.contains(&as_published.url()) && w.contains("Gb389a-9f76-gdjs-a92j-0242bk94356")
    ));
    assert!(about_default
        .iter()
        .any(|w| w.contains(&renamed.url()) && w.contains("innocent-looking-kid")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_whose_clock_is_off_is_warned_about() {
    let skewed = JwksServer::start(jwks(&[TestKey::rsa_a().jwk()])).await;
    skewed.update(|b| {
        b.headers.push((
            "date".into(),
            http_date(SystemTime::now() - Duration::from_secs(3600)),
        ))
    });
    let upstream = Upstream::start().await;
    let report = doctor(&upstream, &[skewed.url()]).await;
    assert_eq!(report.code, Some(0), "{}", report.stdout);
    let warning = warnings(&report.stdout)
        .into_iter()
        .find(|w| w.contains("clock"))
        .unwrap_or_else(|| panic!("{}", report.stdout));
    assert!(warning.contains(&skewed.url()), "{warning}");
    // About an hour behind ours, give or take the test's own runtime.
    let skew: i64 = warning
        .split("by ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{warning}"));
    assert!((-3660..=-3540).contains(&skew), "{warning}");
}

/// IMF-fixdate for a time, to serve as a Date header.
fn http_date(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = seconds.div_euclid(86_400);
    let clock = seconds.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        clock / 3600,
        clock % 3600 / 60,
        clock % 60
    )
}

#[test]
fn http_dates_parse_to_unix_seconds() {
    let cases = [
        ("Sun, 06 Nov 1994 08:49:37 GMT", Some(784_111_777)),
        ("Thu, 01 Jan 1970 00:00:00 GMT", Some(0)),
        ("Tue, 29 Feb 2028 23:59:59 GMT", Some(1_835_481_599)),
        ("Sunday, 06-Nov-94 08:49:37 GMT", None),
        ("Sun, 06 Nov 1994 08:49:37 UTC", None),
        ("Sun, 06 Foo 1994 08:49:37 GMT", None),
        ("", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_http_date(text), expected, "{text}");
    }
    let now = SystemTime::now();
    let round_trip = parse_http_date(&http_date(now)).unwrap();
    assert_eq!(
        round_trip,
        now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    );
}

#[test]
fn clock_skew_within_clock_skew_is_a_note_beyond_it_a_warning() {
    let allowed = Duration::from_secs(30);
    assert!(judge_clock_skew("u", 0, allowed).is_ok());
    assert!(judge_clock_skew("u", 30, allowed).is_ok());
    assert!(judge_clock_skew("u", -30, allowed).is_ok());
    assert!(judge_clock_skew("u", 31, allowed).is_err());
    assert!(judge_clock_skew("u", -3600, allowed)
        .unwrap_err()
        .0
        .contains("-3600s"));
}

#[test]
fn key_url_lints() {
    // (url, audience bound, in a container, expected warning fragments)
    let cases: [(&str, bool, bool, &[&str]); 11] = [
        (
            "https://www.googleapis.com/oauth2/v3/certs",
            false,
            false,
            &["Google keys"],
        ),
        (
            "https://www.googleapis.com/oauth2/v1/certs",
            true,
            false,
            &[],
        ),
        (
            "https://WWW.GOOGLEAPIS.COM/oauth2/v3/certs",
            false,
            false,
            &["Google keys"],
        ),
        (
            "https://googleapis.com.evil.example/certs",
            false,
            false,
            &[],
        ),
        ("https://notgoogleapis.com/certs", false, false, &[]),
        (
            "http://localhost:8585/api/v1/system/config/jwks",
            false,
            true,
            &["inside a container"],
        ),
        (
            "http://localhost:8585/api/v1/system/config/jwks",
            false,
            false,
            &[],
        ),
        (
            "http://127.0.0.1:8585/api/v1/system/config/jwks",
            false,
            true,
            &["inside a container"],
        ),
        (
            "http://[::1]:8585/jwks",
            false,
            true,
            &["inside a container"],
        ),
        (
            "http://openmetadata:8585/api/v1/system/config/jwks",
            false,
            true,
            &[],
        ),
        (
            "http://user@localhost/jwks",
            false,
            true,
            &["inside a container"],
        ),
    ];
    for (url, audience_bound, in_container, expected) in cases {
        let found = lint_key_url(url, audience_bound, in_container);
        assert_eq!(found.len(), expected.len(), "{url}: {found:?}");
        for (warning, fragment) in found.iter().zip(expected) {
            assert!(
                warning.contains(fragment) && warning.contains(url),
                "{url}: {warning}"
            );
        }
    }
}

/// Issue 14, part 4: without a shared feed cookie key, replicas refuse each other's cookies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_warns_when_no_feed_cookie_key_is_configured() {
    let source = JwksServer::start(jwks(&[TestKey::rsa_a().jwk()])).await;
    let upstream = Upstream::start().await;
    let key = "8f2a6c1d9e0b47a3b5c6d7e8f9012345a1b2c3d4e5f60718293a4b5c6d7e8f90";

    let report = doctor(&upstream, &[source.url()]).await;
    assert_eq!(report.code, Some(0), "a warning only: {}", report.stdout);
    let warning = warnings(&report.stdout)
        .into_iter()
        .find(|w| w.contains("feed cookie key"))
        .unwrap_or_else(|| panic!("no feed key warning:\n{}", report.stdout));
    assert!(
        warning.contains("OM_GATEWAY_FEED_KEY") && warning.contains("replica"),
        "{warning}"
    );

    // In Kubernetes, where deploy/ runs several replicas, the warning says so.
    let report = doctor_with_env(
        &upstream,
        &[source.url()],
        &[("KUBERNETES_SERVICE_HOST", "10.0.0.1")],
    )
    .await;
    assert!(
        warnings(&report.stdout)
            .iter()
            .any(|w| w.contains("feed cookie key") && w.contains("Kubernetes")),
        "{}",
        report.stdout
    );

    let report = doctor_with_env(&upstream, &[source.url()], &[("OM_GATEWAY_FEED_KEY", key)]).await;
    assert!(
        !report.stdout.contains("WARNING  feed"),
        "{}",
        report.stdout
    );
    assert!(
        report.stdout.lines().any(|l| l.starts_with("ok")
            && l.contains("feed cookie key: 32 bytes from OM_GATEWAY_FEED_KEY")),
        "{}",
        report.stdout
    );
    assert!(!report.stdout.contains(key), "the key is never printed");
}
