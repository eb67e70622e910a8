//! An in-memory Signal protocol party: identity, prekeys and sessions of one
//! fake device (a contact's phone, or an account's primary phone).

use std::collections::HashMap;

use async_trait::async_trait;
use rand::Rng;
use rand::rngs::StdRng;
use wacore_libsignal::protocol::{
    CiphertextMessage, CiphertextMessageType, Direction, GenericSignedPreKey, IdentityChange, IdentityKey,
    IdentityKeyPair, IdentityKeyStore, KeyPair, PreKeyBundle, PreKeyId, PreKeyRecord, PreKeySignalMessage,
    PreKeyStore, ProtocolAddress, SessionRecord, SessionStore, SignalMessage, SignalProtocolError,
    SignedPreKeyId, SignedPreKeyRecord, SignedPreKeyStore, Timestamp, UsePQRatchet, message_decrypt,
    message_encrypt, process_prekey_bundle,
};

type SignalResult<T> = Result<T, SignalProtocolError>;

/// The id of the one signed prekey every fake device publishes.
const SIGNED_PRE_KEY_ID: u32 = 1;

/// Keys a fake device hands out in a prekey fetch answer.
pub(crate) struct PublishedBundle {
    pub(crate) registration_id: u32,
    pub(crate) identity: [u8; 32],
    pub(crate) signed_pre_key_id: u32,
    pub(crate) signed_pre_key: [u8; 32],
    pub(crate) signed_pre_key_signature: Vec<u8>,
    pub(crate) one_time_pre_key: (u32, [u8; 32]),
}

/// One fake Signal device with everything kept in memory.
pub(crate) struct SignalDevice {
    identity: Identities,
    sessions: Sessions,
    pre_keys: PreKeys,
    signed_pre_keys: SignedPreKeys,
    signed_pre_key: KeyPair,
    signed_pre_key_signature: Vec<u8>,
    next_pre_key_id: u32,
}

impl SignalDevice {
    /// Creates a device whose identity (and signed prekey) come from `rng`.
    pub(crate) fn generate(rng: &mut StdRng) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let registration_id = rng.next_u32() & 0x3fff;
        let signed_pre_key = KeyPair::generate(rng);
        let signature = identity
            .private_key()
            .calculate_signature(&signed_pre_key.public_key.serialize(), rng)
            .map(|signature| signature.to_vec())
            .unwrap_or_default();
        let record = SignedPreKeyRecord::new(
            SignedPreKeyId::from(SIGNED_PRE_KEY_ID),
            Timestamp::from_epoch_millis(0),
            &signed_pre_key,
            &signature,
        );
        let mut signed_pre_keys = SignedPreKeys::default();
        signed_pre_keys.records.insert(SignedPreKeyId::from(SIGNED_PRE_KEY_ID), record);
        Self {
            identity: Identities { own: identity, registration_id, known: HashMap::new() },
            sessions: Sessions::default(),
            pre_keys: PreKeys::default(),
            signed_pre_keys,
            signed_pre_key,
            signed_pre_key_signature: signature,
            next_pre_key_id: 1,
        }
    }

    /// The identity key pair (for a primary phone, also its ADV account key).
    pub(crate) fn identity_key_pair(&self) -> &IdentityKeyPair {
        &self.identity.own
    }

    /// Mints a fresh one-time prekey and returns the bundle to publish.
    pub(crate) fn publish_bundle(&mut self) -> PublishedBundle {
        let id = self.next_pre_key_id;
        self.next_pre_key_id = self.next_pre_key_id % 0x00ff_ffff + 1;
        let key_pair = KeyPair::generate(&mut rand::rng());
        self.pre_keys.records.insert(PreKeyId::from(id), PreKeyRecord::new(PreKeyId::from(id), &key_pair));
        PublishedBundle {
            registration_id: self.identity.registration_id,
            identity: key_bytes(self.identity.own.public_key().public_key_bytes()),
            signed_pre_key_id: SIGNED_PRE_KEY_ID,
            signed_pre_key: key_bytes(self.signed_pre_key.public_key.public_key_bytes()),
            signed_pre_key_signature: self.signed_pre_key_signature.clone(),
            one_time_pre_key: (id, key_bytes(key_pair.public_key.public_key_bytes())),
        }
    }

    /// Decrypts a `pkmsg` or `msg` payload from `sender`.
    pub(crate) async fn decrypt(
        &mut self,
        sender: &ProtocolAddress,
        enc_type: &str,
        ciphertext: &[u8],
    ) -> SignalResult<Vec<u8>> {
        let message = match enc_type {
            "pkmsg" => CiphertextMessage::PreKeySignalMessage(PreKeySignalMessage::try_from(ciphertext)?),
            "msg" => CiphertextMessage::SignalMessage(SignalMessage::try_from(ciphertext)?),
            other => {
                return Err(SignalProtocolError::InvalidArgument(format!("unsupported enc type {other}")));
            }
        };
        let result = message_decrypt(
            &message,
            sender,
            &mut self.sessions,
            &mut self.identity,
            &mut self.pre_keys,
            &self.signed_pre_keys,
            &mut rand::make_rng::<StdRng>(),
            UsePQRatchet::No,
        )
        .await?;
        if let Some(used) = result.consumed_prekey_id {
            self.pre_keys.records.remove(&used);
        }
        Ok(result.plaintext)
    }

    /// Whether a session with `recipient` exists.
    pub(crate) fn has_session(&self, recipient: &ProtocolAddress) -> bool {
        self.sessions.records.contains_key(&address_key(recipient))
    }

    /// Starts a session with `recipient` from its published keys.
    pub(crate) async fn start_session(
        &mut self,
        recipient: &ProtocolAddress,
        bundle: &PreKeyBundle,
    ) -> SignalResult<()> {
        process_prekey_bundle(
            recipient,
            &mut self.sessions,
            &mut self.identity,
            bundle,
            &mut rand::make_rng::<StdRng>(),
            UsePQRatchet::No,
        )
        .await
        .map(|_| ())
    }

    /// Encrypts for `recipient` (a session must exist); returns the `enc`
    /// type (`pkmsg` or `msg`) and the ciphertext.
    pub(crate) async fn encrypt(
        &mut self,
        recipient: &ProtocolAddress,
        plaintext: &[u8],
    ) -> SignalResult<(&'static str, Vec<u8>)> {
        let message = message_encrypt(plaintext, recipient, &mut self.sessions, &mut self.identity).await?;
        let enc_type = match message.message_type() {
            CiphertextMessageType::PreKey => "pkmsg",
            _ => "msg",
        };
        Ok((enc_type, message.serialize().to_vec()))
    }
}

fn key_bytes(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if bytes.len() == 32 {
        out.copy_from_slice(bytes);
    }
    out
}

fn address_key(address: &ProtocolAddress) -> String {
    format!("{}.{}", address.name(), u32::from(address.device_id()))
}

/// Our identity plus the identities of everyone we talked to (all trusted).
struct Identities {
    own: IdentityKeyPair,
    registration_id: u32,
    known: HashMap<String, IdentityKey>,
}

#[async_trait]
impl IdentityKeyStore for Identities {
    async fn get_identity_key_pair(&self) -> SignalResult<IdentityKeyPair> {
        Ok(self.own.clone())
    }

    async fn get_local_registration_id(&self) -> SignalResult<u32> {
        Ok(self.registration_id)
    }

    async fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> SignalResult<IdentityChange> {
        match self.known.insert(address_key(address), *identity) {
            Some(previous) if previous != *identity => Ok(IdentityChange::ReplacedExisting),
            _ => Ok(IdentityChange::NewOrUnchanged),
        }
    }

    async fn is_trusted_identity(
        &self,
        _address: &ProtocolAddress,
        _identity: &IdentityKey,
        _direction: Direction,
    ) -> SignalResult<bool> {
        Ok(true)
    }

    async fn get_identity(&self, address: &ProtocolAddress) -> SignalResult<Option<IdentityKey>> {
        Ok(self.known.get(&address_key(address)).copied())
    }
}

#[derive(Default)]
struct Sessions {
    records: HashMap<String, SessionRecord>,
}

#[async_trait]
impl SessionStore for Sessions {
    async fn load_session(&self, address: &ProtocolAddress) -> SignalResult<Option<SessionRecord>> {
        Ok(self.records.get(&address_key(address)).cloned())
    }

    async fn has_session(&self, address: &ProtocolAddress) -> SignalResult<bool> {
        Ok(self.records.contains_key(&address_key(address)))
    }

    async fn store_session(&mut self, address: &ProtocolAddress, record: SessionRecord) -> SignalResult<()> {
        self.records.insert(address_key(address), record);
        Ok(())
    }
}

#[derive(Default)]
struct PreKeys {
    records: HashMap<PreKeyId, PreKeyRecord>,
}

#[async_trait]
impl PreKeyStore for PreKeys {
    async fn get_pre_key(&self, prekey_id: PreKeyId) -> SignalResult<PreKeyRecord> {
        self.records.get(&prekey_id).cloned().ok_or(SignalProtocolError::InvalidPreKeyId)
    }

    async fn save_pre_key(&mut self, prekey_id: PreKeyId, record: &PreKeyRecord) -> SignalResult<()> {
        self.records.insert(prekey_id, record.clone());
        Ok(())
    }

    async fn remove_pre_key(&mut self, prekey_id: PreKeyId) -> SignalResult<()> {
        self.records.remove(&prekey_id);
        Ok(())
    }
}

#[derive(Default)]
struct SignedPreKeys {
    records: HashMap<SignedPreKeyId, SignedPreKeyRecord>,
}

#[async_trait]
impl SignedPreKeyStore for SignedPreKeys {
    async fn get_signed_pre_key(&self, signed_prekey_id: SignedPreKeyId) -> SignalResult<SignedPreKeyRecord> {
        self.records.get(&signed_prekey_id).cloned().ok_or(SignalProtocolError::InvalidSignedPreKeyId)
    }

    async fn save_signed_pre_key(
        &mut self,
        signed_prekey_id: SignedPreKeyId,
        record: &SignedPreKeyRecord,
    ) -> SignalResult<()> {
        self.records.insert(signed_prekey_id, record.clone());
        Ok(())
    }
}
