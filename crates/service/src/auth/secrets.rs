use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Keys derived from the server's master secret, one per purpose.
#[derive(Clone)]
pub struct Secrets {
    pub token_key: [u8; 32],
    pub api_key_pepper: [u8; 32],
    /// Key of the HMACs that stand in for one-time passwords.
    pub otp_pepper: [u8; 32],
    /// Encrypts the text of queued one-time-password messages.
    pub seal_key: [u8; 32],
    /// Signs the requests one node carries to another.
    pub node_key: [u8; 32],
}

impl Secrets {
    pub fn derive(master: &str) -> Self {
        Secrets {
            token_key: derive(master, b"wagate token signing"),
            api_key_pepper: derive(master, b"wagate api keys"),
            otp_pepper: derive(master, b"wagate otp codes"),
            seal_key: derive(master, b"wagate sealed messages"),
            node_key: derive(master, b"wagate requests between nodes"),
        }
    }

    /// Tells which master secret these keys came from without revealing it: the same on every
    /// node that shares the secret, different otherwise.
    pub fn fingerprint(&self) -> String {
        hex::encode(derive(&hex::encode(self.token_key), b"wagate secret fingerprint"))
    }

    /// A fresh master secret: 32 random bytes, hex.
    pub fn generate_master() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }
}

fn derive(master: &str, purpose: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(master.as_bytes()).expect("HMAC takes any key length");
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}
