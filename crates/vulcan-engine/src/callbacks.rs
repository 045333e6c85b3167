//! POSTs to URLs: an async workload's callback and a topic's message to a url
//! subscription, made by the follow-ups (`followups.rs`) and retried with backoff.
//!
//! A POST is signed with the tenant's secret `CALLBACK_SIGNING_KEY`:
//! `X-Vulcan-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, with
//! `X-Vulcan-Delivery` (the same for every try of one delivery) and `X-Vulcan-Attempt`. It
//! is made to public addresses only, unless the tenant's quota lists the destination in
//! `egress_allow` or an admin asked for it; names are resolved and checked at each try.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use vulcan_domain::{
    never_reachable, Followup, NetRule, NewPost, Quota, Settle, StoreError, SIGNING_SECRET,
};

use crate::engine::now;
use crate::{EgressMode, Engine, SubmitError};

/// How long a POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries of one POST before it is given up (backoff 1, 2, 4 … 300 s: about half an hour).
pub const MAX_POST_ATTEMPTS: u32 = 15;

impl Engine {
    /// Checks that `tenant` may have `url` called (see [`Engine::async_policy`]); answers
    /// whether it may reach a never-reachable range.
    pub(crate) async fn check_destination(
        &self,
        tenant: &str,
        quota: Option<&Quota>,
        url: &str,
    ) -> Result<bool, SubmitError> {
        vulcan_domain::check_url(url).map_err(SubmitError::Invalid)?;
        match self.inner.secrets.secret(tenant, SIGNING_SECRET).await {
            Ok(_) => {}
            // A fine request the tenant is not ready for: 409 until it has the secret.
            Err(StoreError::Missing(_)) => {
                return Err(SubmitError::Store(StoreError::Conflict(format!(
                    "calls to a URL are signed with the tenant's secret {SIGNING_SECRET}, and tenant {tenant} has none: PUT /v1/secrets/{SIGNING_SECRET} (any long random string) first; the receiver checks X-Vulcan-Signature with it"
                ))))
            }
            Err(e) => return Err(e.into()),
        }
        let (host, port) = host_port(url)?;
        let Some(quota) = quota else {
            return Ok(true);
        };
        let rule: Option<NetRule> = format!("{host}:{port}").parse().ok();
        let listed = rule
            .as_ref()
            .is_some_and(|r| quota.egress_allow.iter().any(|own| own.contains(r)));
        let forbidden = |m: String| Err(SubmitError::Refused(vulcan_domain::Refusal::Forbidden(m)));
        if self.inner.config.egress == EgressMode::AllowListed && !listed {
            return forbidden(format!(
                "{host}:{port} is not in this tenant's egress allow-list (quota \"egress_allow\"; VULCAN_EGRESS=allow-listed): the server calls only listed destinations"
            ));
        }
        if let Ok(IpAddr::V4(ip)) = host.parse::<IpAddr>() {
            if let (Some(range), false) = (never_reachable(ip), listed) {
                return forbidden(format!(
                    "{host} is {range}, which the server calls only when an admin lists it in the tenant's quota \"egress_allow\""
                ));
            }
        }
        Ok(listed)
    }

    /// Makes one try of a POST and says what follows it.
    pub(crate) async fn post(
        &self,
        f: &Followup,
        url: &str,
        body: &str,
        private_ok: bool,
    ) -> Settle {
        let outcome = self.try_post(f, url, body, private_ok).await;
        let metrics = &self.inner.metrics;
        match outcome {
            Ok(()) => {
                metrics.post_made("delivered");
                Settle::Done { then: None }
            }
            Err(PostError::Refused(why)) => {
                metrics.post_made("refused");
                tracing::warn!(delivery = %f.id, url, error = %why, "a POST to a URL was refused and is not tried again");
                Settle::Done { then: None }
            }
            Err(PostError::Failed(why)) if f.attempts >= MAX_POST_ATTEMPTS => {
                metrics.post_made("given_up");
                tracing::warn!(delivery = %f.id, url, error = %why, attempts = f.attempts, "a POST to a URL failed every try and is given up");
                Settle::Done { then: None }
            }
            Err(PostError::Failed(why)) => {
                metrics.post_made("failed");
                let wait = crate::consumers::backoff_s(f.attempts);
                Settle::Later {
                    due_at: now() + time::Duration::seconds(wait.into()),
                    error: Some(why),
                }
            }
        }
    }

    async fn try_post(
        &self,
        f: &Followup,
        url: &str,
        body: &str,
        private_ok: bool,
    ) -> Result<(), PostError> {
        let inner = &self.inner;
        let key = crate::secrets::open_for_run(
            &*inner.secrets,
            inner.config.keyring.as_ref(),
            &f.tenant,
            &[SIGNING_SECRET.to_owned()],
        )
        .await
        .map_err(PostError::Refused)?
        .env
        .remove(SIGNING_SECRET)
        .unwrap_or_default();
        let at = OffsetDateTime::now_utc().unix_timestamp();
        let signature = format!("t={at},v1={}", sign(key.as_bytes(), at, body));
        let (url, body, id, attempt) = (
            url.to_owned(),
            body.to_owned(),
            f.id.clone(),
            f.attempts.to_string(),
        );
        tokio::task::spawn_blocking(move || {
            let (host, port) = host_port(&url).map_err(|e| PostError::Refused(e.to_string()))?;
            let allowed = resolve(&host, port, private_ok)?;
            if allowed.is_empty() {
                return Err(PostError::Refused(format!(
                    "{host} resolves only to never-reachable addresses (loopback, private, link-local): an admin must list it in the tenant's quota \"egress_allow\""
                )));
            }
            let agent = ureq::AgentBuilder::new()
                .timeout(POST_TIMEOUT)
                .redirects(0)
                // The addresses checked above, and no others.
                .resolver(move |_: &str| Ok(allowed.clone()))
                .build();
            let answer = agent
                .post(&url)
                .set("content-type", "application/json")
                .set("x-vulcan-signature", &signature)
                .set("x-vulcan-delivery", &id)
                .set("x-vulcan-attempt", &attempt)
                .send_string(&body);
            match answer {
                Ok(r) if (200..300).contains(&r.status()) => Ok(()),
                Ok(r) => Err(PostError::Failed(format!("answered {}", r.status()))),
                Err(ureq::Error::Status(code, _)) => {
                    Err(PostError::Failed(format!("answered {code}")))
                }
                Err(e) => Err(PostError::Failed(e.to_string())),
            }
        })
        .await
        .map_err(|e| PostError::Failed(e.to_string()))?
    }

    /// Stores a POST of `body` to each of `urls` (a topic's url subscriptions).
    pub(crate) async fn add_posts(
        &self,
        tenant: &str,
        urls: &[(String, bool)],
        body: &str,
    ) -> Result<(), StoreError> {
        let posts: Vec<NewPost> = urls
            .iter()
            .map(|(url, private_ok)| NewPost {
                id: format!("post-{}", self.new_id().to_lowercase()),
                tenant: tenant.to_owned(),
                url: url.clone(),
                body: body.to_owned(),
                private_ok: *private_ok,
                due_at: now(),
            })
            .collect();
        if posts.is_empty() {
            return Ok(());
        }
        self.inner.followups.add_posts(&posts).await?;
        self.inner.followup_due.notify_one();
        Ok(())
    }
}

/// Why a POST did not land.
enum PostError {
    /// Never to be tried again (a forbidden destination, no signing secret).
    Refused(String),
    /// Tried again later.
    Failed(String),
}

/// The hex HMAC-SHA256 of `"<at>.<body>"` under `key`.
pub fn sign(key: &[u8], at: i64, body: &str) -> String {
    hmac_hex(key, &[at.to_string().as_bytes(), b".", body.as_bytes()])
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The host and port `url` leads to.
fn host_port(url: &str) -> Result<(String, u16), SubmitError> {
    let parsed = url::Url::parse(url).map_err(|e| SubmitError::Invalid(format!("{url:?}: {e}")))?;
    let host = match parsed.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string(),
        None => return Err(SubmitError::Invalid(format!("{url:?} has no host"))),
    };
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| SubmitError::Invalid(format!("{url:?} has no port")))?;
    Ok((host, port))
}

/// `host`'s addresses that may be called: public ones, and the rest only when `private_ok`.
fn resolve(host: &str, port: u16, private_ok: bool) -> Result<Vec<SocketAddr>, PostError> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| PostError::Failed(format!("cannot resolve {host}: {e}")))?;
    Ok(addrs.filter(|a| private_ok || public(a.ip())).collect())
}

/// Whether `ip` is outside every never-reachable range.
fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => never_reachable(v4).is_none(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => never_reachable(v4).is_none(),
            // Global unicast only (2000::/3).
            None => v6.segments()[0] & 0xe000 == 0x2000,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_hmac_of_the_time_and_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            sign(b"k", 1_700_000_000, "{}"),
            hmac_hex(b"k", &[b"1700000000.{}"])
        );
        assert_ne!(
            sign(b"k", 1_700_000_000, "{}"),
            sign(b"k", 1_700_000_001, "{}")
        );
        assert_ne!(
            sign(b"k", 1_700_000_000, "{}"),
            sign(b"j", 1_700_000_000, "{}")
        );
    }

    #[test]
    fn only_public_addresses_are_called_unless_allowed() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "192.168.1.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!public(private.parse().unwrap()), "{private}");
        }
        for open in ["203.0.113.7", "8.8.8.8", "2001:db8::1"] {
            assert!(public(open.parse().unwrap()), "{open}");
        }
        assert!(resolve("127.0.0.1", 80, false).ok().unwrap().is_empty());
        assert_eq!(resolve("127.0.0.1", 80, true).ok().unwrap().len(), 1);
        assert_eq!(
            host_port("https://h.example:8443/x").unwrap(),
            ("h.example".into(), 8443)
        );
        assert_eq!(
            host_port("http://127.0.0.1/x").unwrap(),
            ("127.0.0.1".into(), 80)
        );
    }
}
