//! OpenMetadata's own server configuration (openmetadata.yaml): `${VAR:-default}` substitution
//! as the server's Dropwizard substitutor does it, then the `authenticationConfiguration` and
//! `authorizerConfiguration` blocks mapped onto the gateway's raw configuration.
//!
//! The server's blocks carry many keys the gateway has no use for (OIDC client settings, LDAP,
//! SAML, ...); they are ignored here, unlike in the gateway's own file, because the file is the
//! server's and must be readable as it is.

use super::env::{parse_list, Environment};
use super::raw::{RawAuthentication, RawAuthorizer, RawOpenMetadata};
use super::ConfigProblem;
use serde_json::Value;

/// Replace `${VAR}` and `${VAR:-default}` with the variable's value (or the default); `$${` is an
/// escaped literal `${`. An unset variable without a default is left as written, as Dropwizard does.
pub fn substitute(text: &str, environment: &dyn Environment) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if start > 0 && rest.as_bytes().get(start - 1) == Some(&b'$') {
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expression = &after[..end];
        let (name, default) = match expression.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (expression, None),
        };
        match (environment.var(name.trim()), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The two blocks the gateway takes from openmetadata.yaml.
#[derive(Debug, Default)]
pub struct OpenMetadataAuth {
    pub authentication: Option<RawAuthentication>,
    pub authorizer: Option<RawAuthorizer>,
    /// `jwtTokenConfiguration`: the identity the server signs its own tokens with.
    pub jwt_token: Option<RawOpenMetadata>,
}

/// Parse openmetadata.yaml after substitution and extract what the gateway trusts.
pub fn read(
    name: &str,
    text: &str,
    environment: &dyn Environment,
) -> Result<OpenMetadataAuth, Vec<ConfigProblem>> {
    let substituted = substitute(text, environment);
    let document: Value = serde_saphyr::from_str(&substituted).map_err(|error| {
        let location = error.location();
        vec![ConfigProblem {
            file: Some(name.to_string()),
            line: location.map(|l| l.line() as usize),
            column: location.map(|l| l.column() as usize),
            key: String::new(),
            message: format!("not valid YAML: {}", super::yaml_error_message(&error)),
        }]
    })?;
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push(ConfigProblem {
            file: Some(name.to_string()),
            line: None,
            column: None,
            key: key.to_string(),
            message,
        })
    };
    let authentication = document.get("authenticationConfiguration").map(|block| {
        let key = "authenticationConfiguration";
        RawAuthentication {
            provider: string_at(block, "provider"),
            public_key_urls: list_at(block, "publicKeyUrls", key, &mut problem),
            jwt_principal_claims: list_at(block, "jwtPrincipalClaims", key, &mut problem),
            jwt_principal_claims_mapping: list_at(
                block,
                "jwtPrincipalClaimsMapping",
                key,
                &mut problem,
            ),
            token_validation_algorithm: string_at(block, "tokenValidationAlgorithm"),
            ..RawAuthentication::default()
        }
    });
    let authorizer = document.get("authorizerConfiguration").map(|block| {
        let key = "authorizerConfiguration";
        RawAuthorizer {
            admin_principals: list_at(block, "adminPrincipals", key, &mut problem),
            principal_domain: string_at(block, "principalDomain"),
            enforce_principal_domain: bool_at(block, "enforcePrincipalDomain"),
            allowed_domains: list_at(block, "allowedDomains", key, &mut problem),
            use_roles_from_provider: bool_at(block, "useRolesFromProvider"),
        }
    });
    let jwt_token = document
        .get("jwtTokenConfiguration")
        .map(|block| RawOpenMetadata {
            jwt_issuer: string_at(block, "jwtissuer"),
            key_id: string_at(block, "keyId"),
            public_key_file: string_at(block, "rsapublicKeyFilePath"),
            ..RawOpenMetadata::default()
        });
    if problems.is_empty() {
        Ok(OpenMetadataAuth {
            authentication,
            authorizer,
            jwt_token,
        })
    } else {
        Err(problems)
    }
}

/// A boolean as the server's YAML reads it (an env value substituted inside quotes is a string).
fn bool_at(block: &Value, key: &str) -> Option<bool> {
    match block.get(key)? {
        Value::Bool(value) => Some(*value),
        Value::String(value) => Some(value.trim().eq_ignore_ascii_case("true")),
        _ => None,
    }
}

fn string_at(block: &Value, key: &str) -> Option<String> {
    match block.get(key)? {
        Value::String(value) => Some(value.clone()),
        Value::Bool(value) => Some(value.to_string()),
        Value::Number(value) => Some(value.to_string()),
        _ => None,
    }
}

fn list_at(
    block: &Value,
    key: &str,
    parent: &str,
    problem: &mut impl FnMut(&str, String),
) -> Option<Vec<String>> {
    match block.get(key)? {
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|item| match item {
                    Value::String(value) => Some(value.trim().to_string()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
                .filter(|item| !item.is_empty())
                .collect(),
        ),
        // An env value substituted inside quotes stays a string: "[a, b]" or "a,b".
        Value::String(value) => Some(parse_list(value)),
        Value::Null => Some(Vec::new()),
        other => {
            problem(
                &format!("{parent}.{key}"),
                format!("expected a list, found {other}"),
            );
            None
        }
    }
}
