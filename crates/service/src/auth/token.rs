//! HS256 JSON Web Tokens (RFC 7519), signed with a key derived from the server secret.
//!
//! Signing and checking are the `jsonwebtoken` crate's: the algorithm is pinned to HS256 (a
//! token naming another one, `none` included, is refused), and the crate checks the expiry
//! (no leeway) and the issuer.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// From a login: the user's full rights.
    Access,
    /// Short-lived, read-only, for one session's QR page and event streams (`?token=`).
    Stream,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// User id.
    pub sub: String,
    pub kind: TokenKind,
    /// The only session a stream token is valid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Dashboard sign-ins: a random id kept across renewals (the CSRF tokens derive from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

/// Who issues tokens; a token naming another issuer is refused.
pub const ISSUER: &str = "wagate";

pub fn issue_token(key: &[u8; 32], claims: &TokenClaims) -> String {
    let key = EncodingKey::from_secret(key).expect("32 bytes are a valid HMAC key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
        .expect("HS256 signing of serialisable claims cannot fail")
}

/// Checks the signature, the issuer and the expiry (against the system clock).
pub fn verify_token(key: &[u8; 32], token: &str) -> Result<TokenClaims, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let key = DecodingKey::from_secret(key).expect("32 bytes are a valid HMAC key");
    match jsonwebtoken::decode::<TokenClaims>(token, &key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(err) => Err(match err.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            _ => TokenError::Malformed,
        }),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    use super::*;

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn claims(exp: i64) -> TokenClaims {
        TokenClaims {
            iss: ISSUER.into(),
            sub: "u1".into(),
            kind: TokenKind::Access,
            session: None,
            sid: None,
            iat: now() - 10,
            exp,
        }
    }

    #[test]
    fn round_trip() {
        let key = [7u8; 32];
        let claims = claims(now() + 60);
        let token = issue_token(&key, &claims);
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(verify_token(&key, &token).unwrap(), claims);
    }

    #[test]
    fn rejects_expired_forged_foreign_and_garbage_tokens() {
        let key = [7u8; 32];
        assert_eq!(verify_token(&key, &issue_token(&key, &claims(now() - 1))), Err(TokenError::Expired));
        let token = issue_token(&key, &claims(now() + 60));
        assert_eq!(verify_token(&[8u8; 32], &token), Err(TokenError::BadSignature));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged_payload = B64.encode(serde_json::to_vec(&claims(now() + 9_999_999)).unwrap());
        parts[1] = &forged_payload;
        assert_eq!(verify_token(&key, &parts.join(".")), Err(TokenError::BadSignature));
        let foreign = TokenClaims { iss: "someone-else".into(), ..claims(now() + 60) };
        assert_eq!(verify_token(&key, &issue_token(&key, &foreign)), Err(TokenError::Malformed));
        for garbage in ["", "a.b", "a.b.c.d", "!!.??.**"] {
            assert_eq!(verify_token(&key, garbage), Err(TokenError::Malformed), "{garbage}");
        }
        let none_alg = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), B64.encode("{}"));
        assert_eq!(verify_token(&key, &none_alg), Err(TokenError::Malformed));
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(now() + 60),
            &EncodingKey::from_secret(&key).unwrap(),
        )
        .unwrap();
        assert_eq!(verify_token(&key, &hs512), Err(TokenError::Malformed), "the algorithm is pinned");
    }
}
