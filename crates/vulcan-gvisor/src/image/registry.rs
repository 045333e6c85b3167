//! A client of the OCI distribution protocol: manifests and blobs over HTTP(S), with
//! anonymous, basic and bearer-token authentication. Every byte it hands back has been
//! checked against its digest.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use vulcan_domain::ImageError;

use super::reference::Reference;

/// Media types a manifest request accepts, most specific first.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// Manifests and configs are small; anything bigger is refused rather than buffered.
pub const MAX_DOCUMENT_BYTES: u64 = 4 * 1024 * 1024;

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex part of a `sha256:` digest, checked, so it is safe in a file name.
pub fn digest_hex(digest: &str) -> Result<&str, ImageError> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            ImageError::Integrity(format!(
                "digest {digest:?} is not a sha256 digest; only sha256 is supported"
            ))
        })
}

/// Registry client settings.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `host[:port]` of registries reached over plain HTTP.
    pub insecure: Vec<String>,
    /// `host[:port]` → (user, password).
    pub credentials: HashMap<String, (String, String)>,
    /// Registries pulls may go to, besides those of images already registered.
    pub allowed: Vec<String>,
    /// How long a whole pull may take; a registry that stalls fails it.
    pub pull_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            credentials: HashMap::new(),
            allowed: Vec::new(),
            pull_timeout: Duration::from_secs(600),
        }
    }
}

pub struct RegistryClient {
    agent: ureq::Agent,
    options: RegistryOptions,
    /// Bearer tokens by `host/repository`.
    tokens: Mutex<HashMap<String, String>>,
}

/// A fetched manifest: its bytes, media type, and the digest the registry claims.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub claimed_digest: Option<String>,
}

fn auth_params(header: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, r)) => (v, r),
                None => (quoted, ""),
            }
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        params.insert(key, value.to_owned());
        rest = remaining.trim_start_matches(',').trim();
    }
    (scheme.to_ascii_lowercase(), params)
}

impl RegistryClient {
    pub fn new(options: RegistryOptions) -> Self {
        // No single read may stall longer than a whole pull may take.
        let read = options.pull_timeout.min(Duration::from_secs(60));
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(read.min(Duration::from_secs(10)))
            .timeout_read(read)
            .redirects(5)
            .user_agent(concat!("vulcan/", env!("CARGO_PKG_VERSION")))
            .build();
        RegistryClient {
            agent,
            options,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    fn base(&self, r: &Reference) -> String {
        let scheme = if self.options.insecure.iter().any(|h| h == &r.registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/{}", r.api_host(), r.repository)
    }

    fn basic(&self, r: &Reference) -> Option<String> {
        self.options.credentials.get(&r.registry).map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
    }

    fn token_key(r: &Reference) -> String {
        format!("{}/{}", r.registry, r.repository)
    }

    /// GET with the authentication the registry asks for (one challenge round).
    fn get(&self, r: &Reference, url: &str, accept: &str) -> Result<ureq::Response, ImageError> {
        let send = |authorization: Option<&str>| {
            let mut req = self.agent.get(url).set("Accept", accept);
            if let Some(a) = authorization {
                req = req.set("Authorization", a);
            }
            req.call().map_err(Box::new)
        };
        let cached = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&Self::token_key(r))
            .map(|t| format!("Bearer {t}"));
        let first = send(cached.as_deref().or(self.basic(r).as_deref()));
        let challenge = match first.map_err(|e| *e) {
            Ok(resp) => return Ok(resp),
            Err(ureq::Error::Status(401, resp)) => {
                resp.header("www-authenticate").map(str::to_owned)
            }
            Err(e) => return Err(self.describe(r, url, e)),
        };
        let authorization = match challenge.as_deref().map(auth_params) {
            Some((scheme, params)) if scheme == "bearer" => {
                format!("Bearer {}", self.bearer_token(r, &params)?)
            }
            Some((scheme, _)) if scheme == "basic" => self.basic(r).ok_or_else(|| {
                ImageError::Registry(format!(
                    "registry {} wants a user name and password: set VULCAN_REGISTRY_CREDENTIALS={}=user:password",
                    r.registry, r.registry
                ))
            })?,
            _ => {
                return Err(ImageError::Registry(format!(
                    "registry {} refused access to {} (401) without saying how to authenticate",
                    r.registry, r.repository
                )))
            }
        };
        send(Some(&authorization)).map_err(|e| self.describe(r, url, *e))
    }

    fn bearer_token(
        &self,
        r: &Reference,
        params: &HashMap<String, String>,
    ) -> Result<String, ImageError> {
        let realm = params.get("realm").ok_or_else(|| {
            ImageError::Registry(format!(
                "registry {} sent a bearer challenge without a realm",
                r.registry
            ))
        })?;
        let scope = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", r.repository));
        let mut req = self.agent.get(realm).query("scope", &scope);
        if let Some(service) = params.get("service") {
            req = req.query("service", service);
        }
        if let Some(basic) = self.basic(r) {
            req = req.set("Authorization", &basic);
        }
        let resp = req.call().map_err(|e| {
            ImageError::Registry(format!(
                "the token service of {} ({realm}) refused a pull token for {}: {}",
                r.registry,
                r.repository,
                short(e)
            ))
        })?;
        let body: serde_json::Value = resp.into_json().map_err(|e| {
            ImageError::Registry(format!(
                "the token service of {} answered garbage: {e}",
                r.registry
            ))
        })?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| {
                ImageError::Registry(format!("the token service of {} sent no token", r.registry))
            })?
            .to_owned();
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Self::token_key(r), token.clone());
        Ok(token)
    }

    fn describe(&self, r: &Reference, url: &str, e: ureq::Error) -> ImageError {
        match e {
            ureq::Error::Status(404, _) => ImageError::Registry(format!(
                "registry {} has no {} ({url} answered 404)",
                r.registry, r
            )),
            ureq::Error::Status(code, _) if code == 401 || code == 403 => {
                ImageError::Registry(format!(
                    "registry {} denied access to {} ({code})",
                    r.registry, r.repository
                ))
            }
            ureq::Error::Status(code, _) => {
                ImageError::Registry(format!("registry {} answered {code} for {url}", r.registry))
            }
            ureq::Error::Transport(t) => {
                let hint = if url.starts_with("https:") {
                    format!(
                        " (if {} speaks plain HTTP, list it in VULCAN_INSECURE_REGISTRIES)",
                        r.registry
                    )
                } else {
                    String::new()
                };
                ImageError::Registry(format!("cannot reach registry {}: {t}{hint}", r.registry))
            }
        }
    }

    /// Fetches a manifest by tag or digest.
    pub fn manifest(&self, r: &Reference, reference: &str) -> Result<Fetched, ImageError> {
        let url = format!("{}/manifests/{reference}", self.base(r));
        let resp = self.get(r, &url, MANIFEST_ACCEPT)?;
        let media_type = resp.content_type().to_owned();
        let claimed_digest = resp.header("docker-content-digest").map(str::to_owned);
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(MAX_DOCUMENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                ImageError::Registry(format!("reading the manifest of {r} failed: {e}"))
            })?;
        if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
            return Err(ImageError::Integrity(format!(
                "the manifest of {r} is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        Ok(Fetched {
            bytes,
            media_type,
            claimed_digest,
        })
    }

    /// Downloads a blob into `dest`, checking its size and digest on the way. `dest` is
    /// written only once the content is verified.
    pub fn blob_to_file(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        dest: &Path,
    ) -> Result<(), ImageError> {
        digest_hex(digest)?;
        let url = format!("{}/blobs/{digest}", self.base(r));
        let resp = self.get(r, &url, "*/*")?;
        let partial = dest.with_extension(format!("partial-{}", std::process::id()));
        let io =
            |e: std::io::Error| ImageError::Io(format!("cannot write {}: {e}", partial.display()));
        let mut file = std::fs::File::create(&partial).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut reader = resp.into_reader().take(size + 1);
        let mut buf = vec![0u8; 64 * 1024];
        let mut total: u64 = 0;
        let result = loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => {
                    break Err(ImageError::Registry(format!(
                        "downloading {digest} from {} failed: {e}",
                        r.registry
                    )))
                }
            };
            total += n as u64;
            if total > size {
                break Err(ImageError::Integrity(format!(
                    "blob {digest} of {r} is larger than the {size} bytes its manifest says"
                )));
            }
            hasher.update(&buf[..n]);
            if let Err(e) = file.write_all(&buf[..n]) {
                break Err(io(e));
            }
        };
        let verified = result.and_then(|()| {
            let actual = format!("sha256:{}", hex(&hasher.finalize()));
            if actual != digest {
                return Err(ImageError::Integrity(format!(
                    "blob {digest} of {r} does not match its digest (the registry sent content with digest {actual}); refused"
                )));
            }
            file.sync_all().map_err(io)?;
            std::fs::rename(&partial, dest).map_err(io)
        });
        if verified.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        verified
    }

    /// Fetches a small blob (an image config) into memory, verified.
    pub fn blob_bytes(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
    ) -> Result<Vec<u8>, ImageError> {
        if size > MAX_DOCUMENT_BYTES {
            return Err(ImageError::Integrity(format!(
                "the config of {r} is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        let url = format!("{}/blobs/{digest}", self.base(r));
        let resp = self.get(r, &url, "*/*")?;
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(size + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ImageError::Registry(format!("downloading {digest} failed: {e}")))?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(ImageError::Integrity(format!(
                "blob {digest} of {r} does not match its digest (the registry sent content with digest {actual}); refused"
            )));
        }
        Ok(bytes)
    }
}

fn short(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, _) => format!("status {code}"),
        ureq::Error::Transport(t) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse() {
        let (scheme, p) = auth_params(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/busybox:pull");
        let (scheme, p) = auth_params(r#"Basic realm="Registry Realm""#);
        assert_eq!(scheme, "basic");
        assert_eq!(p["realm"], "Registry Realm");
    }

    #[test]
    fn digests_are_checked_before_use_in_paths() {
        assert!(digest_hex("sha256:../../etc").is_err());
        assert!(digest_hex(&format!("sha512:{}", "a".repeat(128))).is_err());
        assert_eq!(digest_hex(&sha256_digest(b"")).unwrap().len(), 64);
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
