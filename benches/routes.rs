//! Route matching over the OpenMetadata preset (config/openmetadata-preset.yaml): path
//! normalisation, the public-path check and first-match routing for typical API calls.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::Method;
use om_gateway::policy::normalize_path;
use std::hint::black_box;

const PRESET: &str = include_str!("../config/openmetadata-preset.yaml");

/// A mix of what the UI and ingestion send; the last ones fall through every rule to the default.
const CALLS: &[(&str, &str)] = &[
    ("GET", "/api/v1/tables"),
    (
        "GET",
        "/api/v1/tables/name/sample_data.ecommerce_db.shopify.dim_address",
    ),
    ("PUT", "/api/v1/services/ingestionPipelines/status/abc"),
    ("GET", "/api/v1/users/generateToken/1234"),
    ("POST", "/api/v1/bots"),
    (
        "PATCH",
        "/api/v1/glossaryTerms/7e3f2c1a-0000-4000-8000-000000000000",
    ),
    (
        "GET",
        "/api/v1/search/query?q=customer&index=table_search_index",
    ),
    ("GET", "/api/v1/system/version"),
];

fn routes(c: &mut Criterion) {
    let config = common::config(&format!(
        "upstream: {{ url: 'http://127.0.0.1:9' }}\n{PRESET}"
    ));
    let policy = config.policy();
    let calls: Vec<(Method, String)> = CALLS
        .iter()
        .map(|(method, path)| {
            (
                method.parse().expect("method"),
                path.split('?').next().unwrap_or(path).to_string(),
            )
        })
        .collect();
    let mut group = c.benchmark_group("routes");
    for (method, path) in &calls {
        group.bench_with_input(
            BenchmarkId::new("normalize_public_route", format!("{method} {path}")),
            &(method, path),
            |b, (method, path)| {
                b.iter(|| {
                    let path = normalize_path(black_box(path)).expect("clean path");
                    if policy.is_public(&path) {
                        return None;
                    }
                    Some(policy.route_for(method, &path).name.len())
                })
            },
        );
    }
    group.bench_function("all_calls", |b| {
        b.iter(|| {
            calls
                .iter()
                .map(|(method, path)| policy.route_for(method, black_box(path)).name.len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group! { name = benches; config = common::criterion(); targets = routes }
criterion_main!(benches);
