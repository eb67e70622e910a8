//! QR strings and pairing codes shaped like WhatsApp's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;

/// `ref,noise-key,identity-key,adv-secret`, as a linked device encodes its QR code.
pub fn qr_string() -> String {
    let mut rng = rand::rng();
    let mut part = |len: usize| {
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        STANDARD.encode(bytes)
    };
    format!("2@{},{},{},{}", part(24), part(32), part(32), part(32))
}

/// Eight characters from the alphabet WhatsApp uses for pairing codes (no 0, O, I, U).
pub fn pair_code() -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";
    let mut rng = rand::rng();
    (0..8).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// A made-up LID for a sandbox account.
pub fn lid() -> String {
    let n: u64 = rand::rng().random_range(10_000_000_000_000..100_000_000_000_000);
    format!("{n}@lid")
}

pub fn message_id() -> String {
    let bytes: [u8; 10] = rand::rng().random();
    format!("3EB0{}", bytes.iter().map(|b| format!("{b:02X}")).collect::<String>())
}

/// Pairing codes are shown as `ABCD-EFGH` and typed in any case.
pub fn normalize_pair_code(input: &str) -> String {
    input.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}
