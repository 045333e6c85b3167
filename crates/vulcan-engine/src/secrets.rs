//! Secrets: sealed with XChaCha20-Poly1305 under the server's key before they reach the
//! store (a fresh random nonce per value; the tenant and name bound as associated data, so a
//! sealed value copied to another secret does not open), opened only on the node that runs
//! the code that references them, and masked as `[secret:NAME]` wherever that code's output
//! is kept or streamed.
//!
//! Keys are named by the first bytes of their SHA-256, stored beside each value: at start the
//! node checks that it holds the key of every stored value (and that each opens), so a wrong
//! key is refused at once rather than read as garbage. `VULCAN_SECRET_KEY_PREVIOUS` still
//! opens values during a rotation; [`Engine::rotate_secret_key`] seals them all again under
//! the current key.

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{AeadCore, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use vulcan_domain::{valid_secret_name, Sealed, SecretInfo, SecretStore, StoreError};

use crate::{Engine, SubmitError};

/// One 32-byte key and its name.
#[derive(Clone)]
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey, String> {
        if bytes.len() != 32 {
            return Err(format!(
                "a secret key is 32 bytes (base64 of 32 random bytes: `openssl rand -base64 32`); this one is {}",
                bytes.len()
            ));
        }
        let digest = Sha256::digest(bytes);
        Ok(SecretKey {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            id: digest[..6].iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// A new random key (a node on its own makes one at its first start).
    pub fn generate() -> (SecretKey, [u8; 32]) {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let bytes: [u8; 32] = key.into();
        (SecretKey::from_bytes(&bytes).expect("32 bytes"), bytes)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What binds a sealed value to its secret.
fn associated(tenant: &str, name: &str) -> Vec<u8> {
    format!("vulcan-secret\0{tenant}\0{name}").into_bytes()
}

/// The current key, and the previous one during a rotation.
#[derive(Clone, Debug)]
pub struct Keyring {
    pub current: SecretKey,
    pub previous: Option<SecretKey>,
}

impl Keyring {
    pub fn seal(&self, tenant: &str, name: &str, value: &[u8]) -> Sealed {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = associated(tenant, name);
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value,
                    aad: &aad,
                },
            )
            .expect("encryption of a bounded value cannot fail");
        Sealed {
            key_id: self.current.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    pub fn open(&self, tenant: &str, name: &str, sealed: &Sealed) -> Result<Vec<u8>, String> {
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| {
                format!(
                    "secret {name} of tenant {tenant} is sealed under key {} and this server holds {}: set that key as VULCAN_SECRET_KEY or VULCAN_SECRET_KEY_PREVIOUS",
                    sealed.key_id,
                    self.held()
                )
            })?;
        if sealed.nonce.len() != 24 {
            return Err(format!(
                "secret {name} of tenant {tenant} has a damaged nonce"
            ));
        }
        let aad = associated(tenant, name);
        key.cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                format!(
                    "secret {name} of tenant {tenant} does not open under key {}: the key or the stored value is wrong",
                    key.id
                )
            })
    }

    fn held(&self) -> String {
        match &self.previous {
            Some(p) => format!("{} (and {} as the previous key)", self.current.id, p.id),
            None => self.current.id.clone(),
        }
    }
}

/// Replaces secret values in text with `[secret:NAME]` (longest values first, so a value
/// that contains another is masked whole).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    values: Vec<(String, String)>,
}

impl Redactor {
    pub fn new(mut values: Vec<(String, String)>) -> Redactor {
        values.retain(|(_, v)| !v.is_empty());
        values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        Redactor { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (name, value) in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), &format!("[secret:{name}]"));
            }
        }
        out
    }
}

/// What a run gets from its secrets: the variables to add, a redactor for what it prints,
/// and the versions it saw (a warm instance serves only runs that saw the same).
#[derive(Debug, Default)]
pub(crate) struct Opened {
    pub env: BTreeMap<String, String>,
    pub redactor: Redactor,
    pub versions: String,
}

fn no_key() -> String {
    "this server has no secret key: set VULCAN_SECRET_KEY (a cluster needs one)".into()
}

impl Engine {
    fn keyring(&self) -> Result<&Keyring, SubmitError> {
        self.inner
            .config
            .keyring
            .as_ref()
            .ok_or_else(|| SubmitError::Invalid(no_key()))
    }

    fn secret_store(&self) -> &std::sync::Arc<dyn SecretStore> {
        &self.inner.secrets
    }

    /// Stores a new value of `tenant`'s secret `name`.
    pub async fn put_secret(
        &self,
        tenant: &str,
        name: &str,
        value: &str,
    ) -> Result<SecretInfo, SubmitError> {
        if !valid_secret_name(name) {
            return Err(SubmitError::Invalid(format!(
                "secret name {name:?} is not valid: use A-Z, 0-9 and '_', starting with a letter or '_', at most 64 characters"
            )));
        }
        if value.len() > MAX_SECRET_BYTES {
            return Err(SubmitError::Invalid(format!(
                "a secret's value is at most {MAX_SECRET_BYTES} bytes; this one is {}",
                value.len()
            )));
        }
        let sealed = self.keyring()?.seal(tenant, name, value.as_bytes());
        Ok(self
            .secret_store()
            .put_secret(tenant, name, &sealed)
            .await?)
    }

    pub async fn secrets(&self, tenant: Option<&str>) -> Result<Vec<SecretInfo>, StoreError> {
        self.secret_store().secrets(tenant).await
    }

    pub async fn delete_secret(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.secret_store().delete_secret(tenant, name).await
    }

    /// Checks that every one of `names` is a secret of `tenant` (a submission or deploy
    /// that references one that is not is refused).
    pub(crate) async fn check_secrets(
        &self,
        tenant: &str,
        names: &[String],
    ) -> Result<(), SubmitError> {
        if names.is_empty() {
            return Ok(());
        }
        self.keyring()?;
        for name in names {
            match self.secret_store().secret(tenant, name).await {
                Ok(_) => {}
                Err(StoreError::Missing(_)) => {
                    return Err(SubmitError::Invalid(format!(
                        "secret {name} does not exist in tenant {tenant}: PUT /v1/secrets/{name} first (GET /v1/secrets lists yours)"
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Seals every stored value again under the current key; returns how many were
    /// resealed. A value changed meanwhile is already under the current key.
    pub async fn rotate_secret_key(&self) -> Result<u64, SubmitError> {
        let keyring = self.keyring()?.clone();
        let mut resealed = 0;
        for (info, sealed) in self.secret_store().sealed_secrets().await? {
            if sealed.key_id == keyring.current.id {
                continue;
            }
            let value = keyring
                .open(&info.tenant, &info.name, &sealed)
                .map_err(SubmitError::Invalid)?;
            let again = keyring.seal(&info.tenant, &info.name, &value);
            if self
                .secret_store()
                .reseal(&info.tenant, &info.name, info.version, &again)
                .await?
            {
                resealed += 1;
            }
        }
        Ok(resealed)
    }
}

/// The largest value a secret may have.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Checks at start that `keyring` opens every stored value (`None`: there must be none).
pub async fn check_key(store: &dyn SecretStore, keyring: Option<&Keyring>) -> Result<(), String> {
    let stored = store
        .sealed_secrets()
        .await
        .map_err(|e| format!("cannot read the stored secrets: {e}"))?;
    if stored.is_empty() {
        return Ok(());
    }
    let Some(keyring) = keyring else {
        return Err(format!(
            "{} secrets are stored but {}",
            stored.len(),
            no_key()
        ));
    };
    // One value per key: a key that opens one opens all it sealed.
    let mut seen = std::collections::HashSet::new();
    for (info, sealed) in &stored {
        if seen.insert(sealed.key_id.clone()) {
            keyring.open(&info.tenant, &info.name, sealed)?;
        }
    }
    Ok(())
}

/// Opens `names` of `tenant` for a run.
pub(crate) async fn open_for_run(
    store: &dyn SecretStore,
    keyring: Option<&Keyring>,
    tenant: &str,
    names: &[String],
) -> Result<Opened, String> {
    if names.is_empty() {
        return Ok(Opened::default());
    }
    let keyring = keyring.ok_or_else(no_key)?;
    let mut opened = Opened::default();
    let mut masks = Vec::new();
    let mut versions = Vec::new();
    for name in names {
        let (info, sealed) = store.secret(tenant, name).await.map_err(|e| match e {
            StoreError::Missing(_) => format!(
                "secret {name} of tenant {tenant} no longer exists: PUT /v1/secrets/{name} again"
            ),
            other => format!("cannot read secret {name}: {other}"),
        })?;
        let value = keyring.open(tenant, name, &sealed)?;
        let value =
            String::from_utf8(value).map_err(|_| format!("secret {name} is not UTF-8 text"))?;
        versions.push(format!("{name}@{}", info.version));
        masks.push((name.clone(), value.clone()));
        opened.env.insert(name.clone(), value);
    }
    opened.redactor = Redactor::new(masks);
    opened.versions = versions.join(",");
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring {
            current: SecretKey::generate().0,
            previous: None,
        }
    }

    #[test]
    fn a_value_opens_only_under_its_key_and_as_its_own_secret() {
        let keys = ring();
        let sealed = keys.seal("t", "DB", b"hunter2");
        assert_eq!(keys.open("t", "DB", &sealed).unwrap(), b"hunter2");
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert!(keys
            .open("t", "OTHER", &sealed)
            .unwrap_err()
            .contains("does not open"));
        assert!(keys.open("u", "DB", &sealed).is_err());
        let again = keys.seal("t", "DB", b"hunter2");
        assert_ne!(again.nonce, sealed.nonce, "a fresh nonce per value");
        let stranger = ring();
        assert!(stranger
            .open("t", "DB", &sealed)
            .unwrap_err()
            .contains("sealed under key"));
        let rotating = Keyring {
            current: stranger.current.clone(),
            previous: Some(keys.current.clone()),
        };
        assert_eq!(rotating.open("t", "DB", &sealed).unwrap(), b"hunter2");
    }

    #[test]
    fn keys_are_32_bytes() {
        assert!(SecretKey::from_bytes(&[0; 16])
            .unwrap_err()
            .contains("32 bytes"));
        assert_eq!(SecretKey::from_bytes(&[7; 32]).unwrap().id().len(), 12);
    }

    #[test]
    fn the_redactor_masks_longest_values_first() {
        let r = Redactor::new(vec![
            ("A".into(), "abc".into()),
            ("B".into(), "abcdef".into()),
            ("EMPTY".into(), String::new()),
        ]);
        assert_eq!(r.apply("x abcdef y abc"), "x [secret:B] y [secret:A]");
        assert_eq!(r.apply("nothing"), "nothing");
    }
}
