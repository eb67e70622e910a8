//! HS256 JSON Web Tokens (RFC 7519), signed with a key derived from the server secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

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

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

pub fn issue_token(key: &[u8; 32], claims: &TokenClaims) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialize");
    let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
    let signature = sign(key, signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(signature))
}

/// Checks signature and expiry at `now` (Unix seconds).
pub fn verify_token(key: &[u8; 32], token: &str, now: i64) -> Result<TokenClaims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: serde_json::Value =
        B64.decode(header).ok().and_then(|h| serde_json::from_slice(&h).ok()).ok_or(TokenError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(TokenError::Malformed);
    }
    let signature = B64.decode(signature).map_err(|_| TokenError::Malformed)?;
    let signed = &token[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1];
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(signed.as_bytes());
    mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
    let claims: TokenClaims = B64
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

fn sign(key: &[u8; 32], input: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(input);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> TokenClaims {
        TokenClaims { sub: "u1".into(), kind: TokenKind::Access, session: None, sid: None, iat: 100, exp }
    }

    #[test]
    fn round_trip() {
        let key = [7u8; 32];
        let token = issue_token(&key, &claims(200));
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(verify_token(&key, &token, 150).unwrap(), claims(200));
    }

    #[test]
    fn rejects_expired_forged_and_garbage_tokens() {
        let key = [7u8; 32];
        let token = issue_token(&key, &claims(200));
        assert_eq!(verify_token(&key, &token, 200), Err(TokenError::Expired));
        assert_eq!(verify_token(&[8u8; 32], &token, 150), Err(TokenError::BadSignature));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged_payload = B64.encode(serde_json::to_vec(&claims(9_999_999_999)).unwrap());
        parts[1] = &forged_payload;
        assert_eq!(verify_token(&key, &parts.join("."), 150), Err(TokenError::BadSignature));
        for garbage in ["", "a.b", "a.b.c.d", "!!.??.**"] {
            assert_eq!(verify_token(&key, garbage, 150), Err(TokenError::Malformed), "{garbage}");
        }
        let none_alg = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), B64.encode("{}"));
        assert_eq!(verify_token(&key, &none_alg, 150), Err(TokenError::Malformed));
    }
}
