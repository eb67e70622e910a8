//! Sealed values: stored encrypted (ChaCha20-Poly1305, key derived from the server secret).
//! A queued one-time-password message is opened only by the dispatcher right before it is
//! handed to WhatsApp, so the database never holds a code in clear; webhook signing secrets are
//! opened only to sign.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use wagate_core::MessageContent;
use wagate_core::otp::SEALED_PREFIX;

pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer { cipher: ChaCha20Poly1305::new(Key::from_slice(key)) }
    }

    pub fn seal(&self, text: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let ciphertext =
            self.cipher.encrypt(Nonce::from_slice(&nonce), text.as_bytes()).expect("encryption cannot fail");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}", B64.encode(sealed))
    }

    /// The text of a sealed body; `None` when it is not sealed or does not open with our key.
    pub fn open(&self, body: &str) -> Option<String> {
        let bytes = B64.decode(body.strip_prefix(SEALED_PREFIX)?).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).ok()?;
        String::from_utf8(plain).ok()
    }

    /// The content as it is to be sent: a sealed text opened. `Err` when a sealed text does not
    /// open (the server secret changed since it was queued).
    pub fn open_content(&self, content: MessageContent) -> Result<MessageContent, &'static str> {
        match content {
            MessageContent::Text { body, mentions, reply_to } if wagate_core::otp::is_sealed(&body) => {
                let body =
                    self.open(&body).ok_or("the sealed message does not open with this server's secret")?;
                Ok(MessageContent::Text { body, mentions, reply_to })
            }
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens() {
        let sealer = Sealer::new(&[7; 32]);
        let sealed = sealer.seal("*482913* is your code");
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("482913"));
        assert_eq!(sealer.open(&sealed).as_deref(), Some("*482913* is your code"));
        assert_ne!(sealer.seal("same"), sealer.seal("same"), "a fresh nonce every time");
        assert_eq!(Sealer::new(&[8; 32]).open(&sealed), None, "another key cannot open it");
        assert_eq!(sealer.open("plain text"), None);
    }
}
