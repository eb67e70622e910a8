//! API keys: `wag_` + 40 random base62 characters, stored only as HMAC-SHA256(pepper, key).

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

pub const API_KEY_PREFIX: &str = "wag_";

pub struct ApiKeyMaterial {
    /// Shown to the user once.
    pub key: String,
    /// Recognisable start of the key, kept for listings.
    pub prefix: String,
    pub hash: String,
}

pub fn generate_api_key(pepper: &[u8; 32]) -> ApiKeyMaterial {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let body: String = (0..40).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    let key = format!("{API_KEY_PREFIX}{body}");
    ApiKeyMaterial { prefix: key[..12].to_owned(), hash: hash_api_key(pepper, &key), key }
}

pub fn hash_api_key(pepper: &[u8; 32], key: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(pepper).expect("any key length");
    mac.update(key.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub fn looks_like_api_key(credential: &str) -> bool {
    credential.starts_with(API_KEY_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed_with_the_pepper() {
        let pepper = [1u8; 32];
        let a = generate_api_key(&pepper);
        let b = generate_api_key(&pepper);
        assert_ne!(a.key, b.key);
        assert_eq!(a.key.len(), 44);
        assert!(a.key.starts_with(&a.prefix) && looks_like_api_key(&a.key));
        assert_eq!(a.hash, hash_api_key(&pepper, &a.key));
        assert_ne!(a.hash, hash_api_key(&[2u8; 32], &a.key));
        assert!(!a.hash.contains(&a.key));
    }
}
