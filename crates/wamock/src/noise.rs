//! The server (responder) side of WhatsApp's Noise handshakes, and the
//! encrypted frame transport that follows.
//!
//! wacore-noise publishes only the client (initiator) state machines; the
//! responder is built here from its `NoiseHandshake` primitives. Supported:
//! `XX` (new devices, and paired devices without a cached server key), `IK`
//! (paired devices that pinned our static key) and the `XXfallback` answer to
//! an `IK` hello we cannot decrypt (e.g. a client that pinned another key).

use buffa::Message as _;
use wacore_binary::consts::{NOISE_PATTERN_IK, NOISE_PATTERN_XX, NOISE_PATTERN_XXFALLBACK, WA_CONN_HEADER};
use wacore_libsignal::protocol::KeyPair;
use wacore_noise::{NoiseCipher, NoiseHandshake};
use waproto::whatsapp::{self as wa, HandshakeMessage, cert_chain::noise_certificate};

use crate::keys::public_bytes;
use crate::nodes::now_secs;

/// A failed handshake or transport operation; the connection is dropped.
#[derive(Debug, thiserror::Error)]
#[error("noise: {0}")]
pub(crate) struct NoiseFailure(String);

impl NoiseFailure {
    fn new(what: impl std::fmt::Display) -> Self {
        Self(what.to_string())
    }
}

type Result<T> = std::result::Result<T, NoiseFailure>;

/// The server's long-lived Noise identity: static key and certificate chain.
pub(crate) struct ServerIdentity {
    static_key: KeyPair,
    cert_chain: Vec<u8>,
}

impl ServerIdentity {
    /// Wraps a static key and issues a certificate chain for it.
    pub(crate) fn new(static_key: KeyPair) -> Self {
        let cert_chain = build_cert_chain(&public_bytes(&static_key));
        Self { static_key, cert_chain }
    }
}

/// A chain (intermediate + leaf) valid from yesterday for ten years.
///
/// Signatures are zero-filled: clients built with
/// `danger-skip-cert-chain-verify` check only the structure, serials, key
/// and validity window, which is all a test server can satisfy anyway.
fn build_cert_chain(leaf_key: &[u8; 32]) -> Vec<u8> {
    const DAY: u64 = 24 * 60 * 60;
    let not_before = now_secs().saturating_sub(DAY);
    let not_after = now_secs() + 3650 * DAY;
    let certificate = |details: noise_certificate::Details| wa::cert_chain::NoiseCertificate {
        details: Some(details.encode_to_vec()),
        signature: Some(vec![0u8; 64]),
    };
    let intermediate = noise_certificate::Details {
        serial: Some(1),
        issuer_serial: Some(0),
        key: Some(vec![0x11; 32]),
        not_before: Some(not_before),
        not_after: Some(not_after),
    };
    let leaf = noise_certificate::Details {
        serial: Some(2),
        issuer_serial: Some(1),
        key: Some(leaf_key.to_vec()),
        not_before: Some(not_before),
        not_after: Some(not_after),
    };
    wa::CertChain {
        leaf: buffa::MessageField::some(certificate(leaf)),
        intermediate: buffa::MessageField::some(certificate(intermediate)),
    }
    .encode_to_vec()
}

/// Which handshake established the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// Full handshake (or XX fallback).
    Xx,
    /// Resumed handshake with the pinned server key.
    Ik,
}

/// A finished handshake: the transport plus what the client told us.
pub(crate) struct Established {
    pub(crate) transport: NoiseTransport,
    pub(crate) client_static: [u8; 32],
    pub(crate) client_payload: Vec<u8>,
    pub(crate) pattern: Pattern,
}

/// What answering a ClientHello produced.
pub(crate) enum HelloReply {
    /// IK completed in one round trip.
    Done(Established),
    /// XX (or XXfallback): the ClientFinish is still to come.
    AwaitFinish(Box<PendingFull>),
}

/// Answers the client's first handshake message.
///
/// Returns the ServerHello to send and the handshake state.
pub(crate) fn answer_client_hello(
    server: &ServerIdentity,
    hello_bytes: &[u8],
) -> Result<(Vec<u8>, HelloReply)> {
    let hello = HandshakeMessage::decode_from_slice(hello_bytes)
        .map_err(NoiseFailure::new)?
        .client_hello
        .into_option()
        .ok_or_else(|| NoiseFailure::new("no ClientHello"))?;
    let client_ephemeral = to_key(hello.ephemeral.as_deref(), "client ephemeral")?;
    match (hello.r#static.as_deref(), hello.payload.as_deref()) {
        (Some(encrypted_static), Some(encrypted_payload)) => {
            match resume_ik(server, client_ephemeral, encrypted_static, encrypted_payload) {
                Ok(done) => Ok(done),
                // A hello we cannot decrypt was made for another server key:
                // answer with a full handshake, as the real server does.
                Err(_) => start_full(server, client_ephemeral, NOISE_PATTERN_XXFALLBACK),
            }
        }
        _ => start_full(server, client_ephemeral, NOISE_PATTERN_XX),
    }
}

fn resume_ik(
    server: &ServerIdentity,
    client_ephemeral: [u8; 32],
    encrypted_static: &[u8],
    encrypted_payload: &[u8],
) -> Result<(Vec<u8>, HelloReply)> {
    let server_private = server.static_key.private_key.serialize();
    let mut noise = new_handshake(NOISE_PATTERN_IK)?;
    noise.authenticate(&public_bytes(&server.static_key));
    noise.authenticate(&client_ephemeral);
    mix(&mut noise, server_private, &client_ephemeral)?;
    let client_static = to_key(Some(&decrypt(&mut noise, encrypted_static)?), "client static")?;
    mix(&mut noise, server_private, &client_static)?;
    let client_payload = decrypt(&mut noise, encrypted_payload)?;

    let ephemeral = KeyPair::generate(&mut rand::rng());
    noise.authenticate(&public_bytes(&ephemeral));
    mix(&mut noise, ephemeral.private_key.serialize(), &client_ephemeral)?;
    mix(&mut noise, ephemeral.private_key.serialize(), &client_static)?;
    let encrypted_certificate = encrypt(&mut noise, &server.cert_chain)?;
    let server_hello = server_hello(&ephemeral, None, encrypted_certificate);

    let transport = NoiseTransport::from_handshake(noise)?;
    Ok((
        server_hello,
        HelloReply::Done(Established { transport, client_static, client_payload, pattern: Pattern::Ik }),
    ))
}

fn start_full(
    server: &ServerIdentity,
    client_ephemeral: [u8; 32],
    pattern: &str,
) -> Result<(Vec<u8>, HelloReply)> {
    let mut noise = new_handshake(pattern)?;
    noise.authenticate(&client_ephemeral);
    let ephemeral = KeyPair::generate(&mut rand::rng());
    noise.authenticate(&public_bytes(&ephemeral));
    mix(&mut noise, ephemeral.private_key.serialize(), &client_ephemeral)?;
    let encrypted_static = encrypt(&mut noise, &public_bytes(&server.static_key))?;
    mix(&mut noise, server.static_key.private_key.serialize(), &client_ephemeral)?;
    let encrypted_certificate = encrypt(&mut noise, &server.cert_chain)?;
    let server_hello = server_hello(&ephemeral, Some(encrypted_static), encrypted_certificate);
    Ok((server_hello, HelloReply::AwaitFinish(Box::new(PendingFull { noise, ephemeral }))))
}

/// An XX handshake waiting for the ClientFinish.
pub(crate) struct PendingFull {
    noise: NoiseHandshake,
    ephemeral: KeyPair,
}

impl PendingFull {
    /// Reads the ClientFinish and completes the handshake.
    pub(crate) fn finish(mut self, finish_bytes: &[u8]) -> Result<Established> {
        let finish = HandshakeMessage::decode_from_slice(finish_bytes)
            .map_err(NoiseFailure::new)?
            .client_finish
            .into_option()
            .ok_or_else(|| NoiseFailure::new("no ClientFinish"))?;
        let encrypted_static =
            finish.r#static.ok_or_else(|| NoiseFailure::new("ClientFinish without static"))?;
        let encrypted_payload =
            finish.payload.ok_or_else(|| NoiseFailure::new("ClientFinish without payload"))?;
        let client_static = to_key(Some(&decrypt(&mut self.noise, &encrypted_static)?), "client static")?;
        mix(&mut self.noise, self.ephemeral.private_key.serialize(), &client_static)?;
        let client_payload = decrypt(&mut self.noise, &encrypted_payload)?;
        Ok(Established {
            transport: NoiseTransport::from_handshake(self.noise)?,
            client_static,
            client_payload,
            pattern: Pattern::Xx,
        })
    }
}

fn new_handshake(pattern: &str) -> Result<NoiseHandshake> {
    NoiseHandshake::new(pattern, &WA_CONN_HEADER).map_err(NoiseFailure::new)
}

fn mix(noise: &mut NoiseHandshake, private: &[u8], public: &[u8; 32]) -> Result<()> {
    noise.mix_shared_secret(private, public).map_err(NoiseFailure::new)
}

fn encrypt(noise: &mut NoiseHandshake, plaintext: &[u8]) -> Result<Vec<u8>> {
    noise.encrypt(plaintext).map_err(NoiseFailure::new)
}

fn decrypt(noise: &mut NoiseHandshake, ciphertext: &[u8]) -> Result<Vec<u8>> {
    noise.decrypt(ciphertext).map_err(NoiseFailure::new)
}

fn to_key(bytes: Option<&[u8]>, what: &str) -> Result<[u8; 32]> {
    bytes
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| NoiseFailure::new(format!("{what} is not a 32-byte key")))
}

fn server_hello(
    ephemeral: &KeyPair,
    encrypted_static: Option<Vec<u8>>,
    encrypted_certificate: Vec<u8>,
) -> Vec<u8> {
    HandshakeMessage {
        server_hello: buffa::MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(public_bytes(ephemeral).to_vec()),
            r#static: encrypted_static,
            payload: Some(encrypted_certificate),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// AES-GCM frame encryption after the handshake, one counter per direction.
pub(crate) struct NoiseTransport {
    read: NoiseCipher,
    write: NoiseCipher,
    read_counter: u32,
    write_counter: u32,
}

impl NoiseTransport {
    fn from_handshake(noise: NoiseHandshake) -> Result<Self> {
        // The initiator writes with the first split key, so we read with it.
        let (first, second) = noise.finish().map_err(NoiseFailure::new)?;
        Ok(Self { read: first, write: second, read_counter: 0, write_counter: 0 })
    }

    /// Encrypts one plaintext frame body.
    pub(crate) fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let counter = self.write_counter;
        self.write_counter =
            counter.checked_add(1).ok_or_else(|| NoiseFailure::new("write counter exhausted"))?;
        self.write.encrypt_with_counter(counter, plaintext).map_err(NoiseFailure::new)
    }

    /// Decrypts one frame body.
    pub(crate) fn open(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let counter = self.read_counter;
        self.read_counter =
            counter.checked_add(1).ok_or_else(|| NoiseFailure::new("read counter exhausted"))?;
        let mut buffer = ciphertext.to_vec();
        self.read.decrypt_in_place_with_counter(counter, &mut buffer).map_err(NoiseFailure::new)?;
        Ok(buffer)
    }
}

/// Strips the connection preamble of the client's first message: an optional
/// edge-routing block (`ED\0\1` + 3-byte length + data) and the 4-byte
/// `WA` header. Returns the framed bytes that follow.
pub(crate) fn strip_preamble(data: &[u8]) -> Result<&[u8]> {
    let mut rest = data;
    if rest.starts_with(b"ED\x00\x01") {
        let length_bytes = rest.get(4..7).ok_or_else(|| NoiseFailure::new("truncated edge routing"))?;
        let length = (usize::from(length_bytes[0]) << 16)
            | (usize::from(length_bytes[1]) << 8)
            | usize::from(length_bytes[2]);
        rest = rest.get(7 + length..).ok_or_else(|| NoiseFailure::new("truncated edge routing data"))?;
    }
    if rest.len() < WA_CONN_HEADER.len() || &rest[..2] != b"WA" {
        return Err(NoiseFailure::new("missing WA connection header"));
    }
    Ok(&rest[WA_CONN_HEADER.len()..])
}

/// Prefixes a frame body with its 3-byte big-endian length.
pub(crate) fn frame(body: &[u8]) -> Vec<u8> {
    let length = body.len();
    let mut out = Vec::with_capacity(length + 3);
    out.extend_from_slice(&[(length >> 16) as u8, (length >> 8) as u8, length as u8]);
    out.extend_from_slice(body);
    out
}
