//! Authentication: passwords, signed tokens, API keys, login and request rate limits.

mod api_key;
mod api_quota;
mod limit;
mod password;
mod principal;
mod rate_limit;
mod secrets;
mod token;

pub use api_key::{ApiKeyMaterial, generate_api_key, hash_api_key, looks_like_api_key};
pub use api_quota::{ApiLimits, ApiQuota, Quota, QuotaExceeded};
pub use limit::Limit;
pub use password::{hash_password, verify_password};
pub use principal::{MissingScope, Principal};
pub use rate_limit::{Allowance, RateLimiter};
pub use secrets::Secrets;
pub use token::{ISSUER, TokenClaims, TokenError, TokenKind, issue_token, verify_token};
