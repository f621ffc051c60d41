//! `om-gateway inspect`, through the real binary: exit 0 on allow with everything that
//! explains it, 1 on deny with the exact 401/403 reason, 2 on bad arguments; the token from the
//! argument or standard input, and never echoed.

use crate::support::keys::TestKey;
use std::io::Write;
use std::process::{Command, Output, Stdio};

struct Inspect {
    _directory: tempfile::TempDir,
    config: std::path::PathBuf,
    key: TestKey,
}

/// A config trusting key A from its PEM file (no network), with one admin-only route.
fn inspect_setup() -> Inspect {
    let key = TestKey::rsa_a();
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "authenticationConfiguration:\n  publicKeyUrls: []\n  publicKeyFiles:\n    - {{ file: \"{}\", kid: key-a }}\n\
             routes:\n  - name: bots-admin\n    match: {{ pathPrefix: /api/v1/bots }}\n    require: {{ rolesAny: [ Admin ] }}\n",
            key.public_pem_path().display()
        ),
    )
    .unwrap();
    Inspect {
        _directory: directory,
        config,
        key,
    }
}

fn run(setup: &Inspect, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_om-gateway"))
        .arg("inspect")
        .arg("--config")
        .arg(&setup.config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("OM_GATEWAY_CONFIG")
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into(),
        String::from_utf8_lossy(&stderr).into(),
    )
}

fn assert_no_token(token: &str, stdout: &str, stderr: &str) {
    let signature = token.rsplit('.').next().unwrap();
    for (name, text) in [("stdout", stdout), ("stderr", stderr)] {
        assert!(!text.contains(token), "{name} echoes the token");
        assert!(
            !text.contains(signature),
            "{name} echoes the token's signature"
        );
    }
}

#[test]
fn inspect_explains_allow_and_deny_and_never_echoes_the_token() {
    let setup = inspect_setup();
    let tokens = setup.key.tokens();
    let personal = tokens.personal();
    let expired = tokens.expired();

    // Allow, token as an argument.
    let (code, stdout, stderr) = run(&setup, &["--path", "/api/v1/tables", &personal], None);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    for expected in [
        "\"kid\":\"key-a\"",                     // header
        "\"sub\":\"alice\"",                     // claims
        "kid key-a from ",                       // which key verifies it
        "rsa-a.pub.pem",                         // and its source
        "principal alice (email alice@open-metadata.org, isBot false, tokenType PERSONAL_ACCESS, roles [DataConsumer]",
        "route     default for GET /api/v1/tables",
        "decision  allow",
        "x-auth-request-user: alice",
        "x-auth-request-roles: DataConsumer",
        "x-auth-request-token-type: PERSONAL_ACCESS",
    ] {
        assert!(stdout.contains(expected), "missing `{expected}` in:\n{stdout}");
    }
    assert_no_token(&personal, &stdout, &stderr);

    // Allow, token from standard input (`-`), with a `Bearer ` prefix as pasted from a header.
    let (code, stdout, stderr) = run(&setup, &["-"], Some(&format!("Bearer {personal}\n")));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("decision  allow"));
    assert_no_token(&personal, &stdout, &stderr);

    // Deny 403, naming the rule and what is missing; the path is normalised first.
    let (code, stdout, stderr) = run(
        &setup,
        &[
            "--method",
            "delete",
            "--path",
            "/api/v1/x/../%62ots/1",
            &personal,
        ],
        None,
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("route     bots-admin for DELETE /api/v1/bots/1"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"decision  deny 403 {"code":403,"message":"Forbidden: route `bots-admin` requires a role among [Admin]"}"#),
        "{stdout}"
    );
    assert_no_token(&personal, &stdout, &stderr);

    // Deny 401 with OpenMetadata's exact words.
    let (code, stdout, stderr) = run(&setup, &[&expired], None);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains(r#"decision  deny 401 {"code":401,"message":"Expired token!"}"#),
        "{stdout}"
    );
    assert_no_token(&expired, &stdout, &stderr);

    // A bad signature: 401 too.
    let forged = format!("{}.{}", personal.rsplit_once('.').unwrap().0, "AAAA");
    let (code, stdout, stderr) = run(&setup, &[&forged], None);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("decision  deny 401"), "{stdout}");

    // A public path needs no token at all.
    let (code, stdout, _) = run(
        &setup,
        &["--path", "/api/v1/system/version", &personal],
        None,
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("public path"), "{stdout}");
}

#[test]
fn inspect_exits_2_on_bad_arguments() {
    let setup = inspect_setup();
    let personal = setup.key.tokens().personal();
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (
            vec!["--method", "NOT A METHOD", &personal],
            None,
            "is not an HTTP method",
        ),
        (vec!["--no-such-flag", &personal], None, "--no-such-flag"),
        (vec!["-"], Some("   \n"), "no token given"),
        (vec![], Some(""), "no token given"),
    ];
    for (args, stdin, message) in cases {
        let (code, stdout, stderr) = run(&setup, &args, stdin);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_no_token(&personal, &stdout, &stderr);
    }
}
