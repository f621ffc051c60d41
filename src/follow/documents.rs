//! The three settings documents as the server writes them, read into `PublishedSettings`.
//!
//! Only what each endpoint really publishes is taken: the public answers are fresh
//! `AuthenticationConfiguration`/`AuthorizerConfiguration` objects with an allow-list copied in
//! (`ConfigResource.getAuthConfig`, `getAuthorizerConfig`), so the lists they do not copy come
//! out empty and mean nothing; the admin answer (`SystemResource.getSecurityConfig`) is the whole
//! current configuration. Absent or `null` is "not published"; a value of the wrong JSON type
//! makes the whole document invalid.

use crate::config::published::{
    Published, PublishedSettings, AUTHORIZER_ENDPOINT, AUTH_ENDPOINT, SECURITY_ENDPOINT,
};
use serde_json::{Map, Value};

type Fields = Map<String, Value>;

/// Why a published document was not taken: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DocumentError(pub String);

/// `/api/v1/system/config/auth`: principal claims, their mapping, the SSO authority and client id.
pub fn auth(document: &Value) -> Result<PublishedSettings, DocumentError> {
    let fields = object(document, "the document")?;
    authentication_fields(fields, AUTH_ENDPOINT, false)
}

/// `/api/v1/system/config/authorizer`: the principal domain only.
pub fn authorizer(document: &Value) -> Result<PublishedSettings, DocumentError> {
    let fields = object(document, "the document")?;
    Ok(PublishedSettings {
        principal_domain: string(fields, "principalDomain", AUTHORIZER_ENDPOINT)?,
        ..PublishedSettings::default()
    })
}

/// `/api/v1/system/security/config`: `{authenticationConfiguration, authorizerConfiguration}`.
pub fn security(document: &Value) -> Result<PublishedSettings, DocumentError> {
    let fields = object(document, "the document")?;
    let authentication = object(
        fields
            .get("authenticationConfiguration")
            .unwrap_or(&Value::Null),
        "authenticationConfiguration",
    )?;
    let authorizer = object(
        fields
            .get("authorizerConfiguration")
            .unwrap_or(&Value::Null),
        "authorizerConfiguration",
    )?;
    let endpoint = SECURITY_ENDPOINT;
    let mut settings = authentication_fields(authentication, endpoint, true)?;
    settings.principal_domain = string(authorizer, "principalDomain", endpoint)?;
    settings.enforce_principal_domain = boolean(authorizer, "enforcePrincipalDomain", endpoint)?;
    settings.allowed_domains = strings(authorizer, "allowedDomains", endpoint)?;
    settings.admin_principals = strings(authorizer, "adminPrincipals", endpoint)?;
    settings.use_roles_from_provider = boolean(authorizer, "useRolesFromProvider", endpoint)?;
    Ok(settings)
}

/// Later documents win where they publish a value (the admin document is read last).
pub fn merge(documents: &[PublishedSettings]) -> PublishedSettings {
    let mut merged = PublishedSettings::default();
    for document in documents {
        macro_rules! over {
            ($($field:ident),*) => {
                $(if document.$field.is_some() {
                    merged.$field = document.$field.clone();
                })*
            };
        }
        over!(
            principal_claims,
            principal_claims_mapping,
            principal_domain,
            public_key_urls,
            enforce_principal_domain,
            allowed_domains,
            admin_principals,
            use_roles_from_provider,
            authority,
            client_id
        );
    }
    merged
}

fn authentication_fields(
    fields: &Fields,
    endpoint: &'static str,
    with_key_urls: bool,
) -> Result<PublishedSettings, DocumentError> {
    Ok(PublishedSettings {
        principal_claims: strings(fields, "jwtPrincipalClaims", endpoint)?,
        principal_claims_mapping: strings(fields, "jwtPrincipalClaimsMapping", endpoint)?,
        public_key_urls: if with_key_urls {
            strings(fields, "publicKeyUrls", endpoint)?
        } else {
            None
        },
        // An empty authority or client id means the provider does not use one (basic, LDAP).
        authority: string(fields, "authority", endpoint)?.filter(|p| !p.value.trim().is_empty()),
        client_id: string(fields, "clientId", endpoint)?.filter(|p| !p.value.trim().is_empty()),
        ..PublishedSettings::default()
    })
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Fields, DocumentError> {
    value
        .as_object()
        .ok_or_else(|| DocumentError(format!("{what} is not a JSON object")))
}

fn strings(
    fields: &Fields,
    key: &str,
    endpoint: &'static str,
) -> Result<Option<Published<Vec<String>>>, DocumentError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(|text| text.trim().to_string())
                    .ok_or_else(|| {
                        DocumentError(format!("{key} holds a {}, not a string", kind(item)))
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|value| Some(Published { value, endpoint })),
        Some(other) => Err(DocumentError(format!(
            "{key} is a {}, not a list",
            kind(other)
        ))),
    }
}

fn string(
    fields: &Fields,
    key: &str,
    endpoint: &'static str,
) -> Result<Option<Published<String>>, DocumentError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(Published {
            value: text.trim().to_string(),
            endpoint,
        })),
        Some(other) => Err(DocumentError(format!(
            "{key} is a {}, not a string",
            kind(other)
        ))),
    }
}

fn boolean(
    fields: &Fields,
    key: &str,
    endpoint: &'static str,
) -> Result<Option<Published<bool>>, DocumentError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(Published {
            value: *value,
            endpoint,
        })),
        Some(other) => Err(DocumentError(format!(
            "{key} is a {}, not a boolean",
            kind(other)
        ))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}
