//! Deterministic key material derived from the mock's seed.

use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use wacore_libsignal::protocol::KeyPair;

/// A random generator seeded from the mock's seed and a purpose label, so the
/// same seed always yields the same keys (e.g. the server's static key, which
/// paired clients pin for their IK handshakes).
pub(crate) fn seeded_rng(seed: &[u8; 32], label: &str) -> StdRng {
    let mut hasher = Sha256::new();
    hasher.update(seed);
    hasher.update(label.as_bytes());
    let derived: [u8; 32] = hasher.finalize().into();
    StdRng::from_seed(derived)
}

/// A Curve25519 key pair derived from the seed and a label.
pub(crate) fn seeded_key_pair(seed: &[u8; 32], label: &str) -> KeyPair {
    KeyPair::generate(&mut seeded_rng(seed, label))
}

/// A 32-byte public key as an array (Curve25519 keys are always 32 bytes).
pub(crate) fn public_bytes(key_pair: &KeyPair) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(key_pair.public_key.public_key_bytes());
    out
}
