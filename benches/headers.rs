//! Header rewriting on the way upstream: strip client identity and hop-by-hop headers, set the
//! identity headers from a verified principal and `X-Forwarded-*`, on a browser-sized header map.

mod common;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use om_gateway::proxy::headers::{
    set_forwarded_headers, set_identity_headers, strip_hop_by_hop_headers, strip_identity_headers,
    RequestIds,
};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

fn request_headers(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut add = |name: &'static str, value: &str| {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("header value"),
        );
    };
    add("host", "openmetadata.example.com");
    add(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    );
    add("accept", "application/json, text/plain, */*");
    add("accept-language", "en-US,en;q=0.5");
    add("accept-encoding", "gzip, deflate, br");
    add("authorization", &format!("Bearer {token}"));
    add("connection", "keep-alive");
    add("referer", "https://openmetadata.example.com/explore/tables");
    add("x-auth-request-user", "admin");
    add("x-forwarded-for", "10.1.2.3");
    headers
}

fn headers(c: &mut Criterion) {
    let config = common::key_config();
    let authenticator = common::authenticator(&config);
    let token = common::bot_token("rsa-a.pem", "rsa-2048", 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let principal = runtime
        .block_on(authenticator.authenticate_token(&token))
        .expect("verifies")
        .principal;
    let template = request_headers(&token);
    let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let forwarded = |headers: &mut HeaderMap| {
        set_forwarded_headers(headers, client, false, Some("openmetadata.example.com"))
    };
    // The whole rewrite, then each step alone; the clone happens outside the timed part.
    rewrite(c, &template, "headers/rewrite_request", |headers| {
        strip_identity_headers(headers);
        strip_hop_by_hop_headers(headers, false);
        set_identity_headers(headers, black_box(&principal));
        forwarded(headers);
    });
    rewrite(c, &template, "headers/step/strip_identity", |headers| {
        strip_identity_headers(headers)
    });
    rewrite(c, &template, "headers/step/strip_hop_by_hop", |headers| {
        strip_hop_by_hop_headers(headers, false)
    });
    rewrite(c, &template, "headers/step/set_identity", |headers| {
        set_identity_headers(headers, black_box(&principal))
    });
    rewrite(c, &template, "headers/step/set_forwarded", forwarded);
    let request_ids = RequestIds::new();
    let no_id = HeaderMap::new();
    c.bench_function("headers/step/request_id_generate", |b| {
        b.iter(|| request_ids.take_or_generate(black_box(&no_id)))
    });
    c.bench_function("headers/clone_only_baseline", |b| {
        b.iter_batched(|| (), |()| template.clone(), BatchSize::SmallInput)
    });
}

/// Time `step` on a fresh clone of `template` per iteration.
fn rewrite(c: &mut Criterion, template: &HeaderMap, name: &str, step: impl Fn(&mut HeaderMap)) {
    c.bench_function(name, |b| {
        b.iter_batched(
            || template.clone(),
            |mut headers| {
                step(&mut headers);
                headers
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group! { name = benches; config = common::criterion(); targets = headers }
criterion_main!(benches);
