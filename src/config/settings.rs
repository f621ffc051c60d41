//! `Config` → the settings each deciding module owns. `policy`, `verify` and the rest never read
//! `Config`; this file is the one place that knows both sides.

use super::Config;
use crate::policy::{Policy, PolicySettings};
use crate::verify::{ClaimRules, OpenMetadataIdentity, VerifySettings};

impl Config {
    /// What verification needs: claim rules as OpenMetadata's JwtFilter applies them, the cache.
    pub fn verify_settings(&self) -> VerifySettings {
        let auth = &self.auth;
        let extra_claims = self
            .routes
            .iter()
            .chain(std::iter::once(&self.default_route))
            .flat_map(|route| route.require.claims.iter().map(|(name, _)| name.clone()))
            .collect();
        let openmetadata = &self.openmetadata;
        VerifySettings {
            claims: ClaimRules {
                default_algorithm: auth.token_validation_algorithm,
                issuers: auth.issuers.clone(),
                audiences: auth.audiences.clone(),
                clock_skew: auth.clock_skew,
                expiry_policy: auth.allow_tokens_without_expiry,
                principal_claims: auth.principal_claims.clone(),
                principal_mapping: auth.principal_claims_mapping.clone(),
                roles_claim: auth.roles_claim.clone(),
                use_roles_from_provider: self.authorizer.use_roles_from_provider,
                principal_domain: self.authorizer.principal_domain.clone(),
                enforce_principal_domain: self.authorizer.enforce_principal_domain,
                allowed_domains: self.authorizer.allowed_domains.clone(),
                openmetadata: Some(OpenMetadataIdentity {
                    issuer: openmetadata.issuer.clone(),
                    key_id: openmetadata.key_id.clone(),
                }),
                extra_claims,
            },
            cache_max_entries: self.token_cache.max_entries,
            cache_ttl: self.token_cache.ttl,
        }
    }

    /// The compiled route policy of this configuration.
    pub fn policy(&self) -> Policy {
        Policy::new(PolicySettings {
            default_public_paths: self.default_public_paths,
            public_paths: self.public_paths.clone(),
            routes: self.routes.clone(),
            default_route: self.default_route.clone(),
            admin_principals: self.authorizer.admin_principals.clone(),
            forward_auth_path: self.forward_auth_path.clone(),
        })
    }
}
