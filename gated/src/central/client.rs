//! HTTPS client of the Central API v1: rustls with the central CA pinned by
//! config, a timeout on every call, and device authentication (a bearer
//! token the device renews by signing a challenge with its own key).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::api::{self, AccessToken, ApiError, paths};

/// Connecting (TCP + TLS) never waits longer than this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An ordinary call, from request to the last byte of the answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    /// No answer: connection refused or dropped, TLS failure, timeout.
    #[error("central system unreachable: {0}")]
    Unreachable(String),
    /// The central system answered with an error.
    #[error("central system answered {status}: {} ({})", .body.message, .body.error)]
    Status { status: u16, body: ApiError },
    /// An answer this client cannot read.
    #[error("central system sent an unreadable answer: {0}")]
    Protocol(String),
    #[error("{0}")]
    Setup(String),
}

impl CentralError {
    /// Worth retrying later (the server or the path to it is at fault).
    pub fn is_transient(&self) -> bool {
        match self {
            CentralError::Unreachable(_) => true,
            CentralError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// A reqwest client trusting only `ca_file` when given (the platform's roots otherwise).
pub fn http_client(ca_file: Option<&Path>) -> Result<reqwest::Client, CentralError> {
    // rustls needs one process-wide crypto provider; a second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .https_only(false)
        .user_agent(concat!("gated/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| CentralError::Setup(format!("central CA {}: {e}", ca.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| CentralError::Setup(format!("central CA {}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(CentralError::Setup(format!(
                "central CA {}: no certificate in the file",
                ca.display()
            )));
        }
        b = b.tls_certs_only(certs);
    }
    b.build()
        .map_err(|e| CentralError::Setup(format!("HTTPS client: {e}")))
}

/// Joins the base URL (`…/api/v1`) and a path.
pub fn endpoint(base: &str, path: &str) -> String {
    format!("{}/{path}", base.trim_end_matches('/'))
}

/// Sends one request and reads the JSON answer.
pub async fn send<T: DeserializeOwned>(
    req: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<T, CentralError> {
    let resp = req
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| CentralError::Unreachable(describe(&e)))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| CentralError::Unreachable(describe(&e)))?;
    if !status.is_success() {
        let body = serde_json::from_slice::<ApiError>(&bytes).unwrap_or_else(|_| ApiError {
            error: "http".into(),
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        });
        return Err(CentralError::Status {
            status: status.as_u16(),
            body,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| CentralError::Protocol(e.to_string()))
}

/// reqwest's Display hides the cause (e.g. the certificate error); show the chain.
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// The device's authenticated session with the central system.
#[derive(Debug)]
pub struct Session {
    http: reqwest::Client,
    base: String,
    device_id: String,
    key: SigningKey,
    token: Mutex<Option<AccessToken>>,
}

impl Session {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        device_id: &str,
        key: SigningKey,
        token: Option<AccessToken>,
    ) -> Self {
        Session {
            http,
            base: base.to_owned(),
            device_id: device_id.to_owned(),
            key,
            token: Mutex::new(token),
        }
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The device key this session signs with (the site network presents it too).
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The current token, if one was obtained since start (to save it).
    pub fn token(&self) -> Option<AccessToken> {
        self.token.lock().expect("token").clone()
    }

    /// A new token: the server's challenge, signed with the device key.
    async fn authenticate(&self) -> Result<AccessToken, CentralError> {
        let ch: api::Challenge = send(
            self.http
                .post(endpoint(&self.base, paths::AUTH_CHALLENGE))
                .json(&api::ChallengeRequest {
                    device_id: self.device_id.clone(),
                }),
            CALL_TIMEOUT,
        )
        .await?;
        let raw = hex::decode(&ch.challenge)
            .map_err(|_| CentralError::Protocol("challenge is not hex".into()))?;
        let mut msg = api::CHALLENGE_DOMAIN.to_vec();
        msg.extend_from_slice(&raw);
        let signature = self.key.sign(&msg);
        let token: AccessToken = send(
            self.http
                .post(endpoint(&self.base, paths::AUTH_TOKEN))
                .json(&api::TokenRequest {
                    device_id: self.device_id.clone(),
                    challenge: ch.challenge,
                    signature: hex::encode(signature.to_bytes()),
                }),
            CALL_TIMEOUT,
        )
        .await?;
        tracing::info!("central access token renewed");
        *self.token.lock().expect("token") = Some(token.clone());
        Ok(token)
    }

    async fn bearer(&self) -> Result<String, CentralError> {
        let now = jiff::Timestamp::now().as_millisecond();
        let current = self.token.lock().expect("token").clone();
        match current {
            // A minute of margin: the token must not expire in flight.
            Some(t) if t.expires_at_ms > now + 60_000 => Ok(t.token),
            _ => Ok(self.authenticate().await?.token),
        }
    }

    /// An authenticated call; on 401 the token is renewed once and the call repeated.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T, CentralError> {
        let mut renewed = false;
        loop {
            let token = self.bearer().await?;
            let mut req = self
                .http
                .request(method.clone(), endpoint(&self.base, path))
                .bearer_auth(token)
                .query(query);
            if let Some(b) = body {
                req = req.json(b);
            }
            match send(req, timeout).await {
                Err(CentralError::Status { status: 401, .. }) if !renewed => {
                    renewed = true;
                    *self.token.lock().expect("token") = None;
                }
                other => return other,
            }
        }
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        timeout: Duration,
    ) -> Result<T, CentralError> {
        self.call::<(), T>(reqwest::Method::GET, path, query, None, timeout)
            .await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CentralError> {
        self.call(reqwest::Method::POST, path, &[], Some(body), CALL_TIMEOUT)
            .await
    }

    /// Downloads `url` (on the central system's own origin: the same pinned
    /// TLS, the same device token) into `to`, calling `progress(done, total)`
    /// as it goes. Returns the SHA-256 of what was written, in hex.
    pub async fn download(
        &self,
        url: &str,
        to: &std::path::Path,
        mut progress: impl FnMut(u64, Option<u64>) + Send,
    ) -> Result<String, CentralError> {
        use sha2::Digest;
        use tokio::io::AsyncWriteExt;
        let origin = |u: &str| {
            url::Url::parse(u).ok().map(|u| {
                (
                    u.scheme().to_owned(),
                    u.host_str().map(str::to_owned),
                    u.port_or_known_default(),
                )
            })
        };
        if origin(url).is_none() || origin(url) != origin(&self.base) {
            return Err(CentralError::Setup(format!(
                "{url} is not on the central system ({}): bundles are fetched from it only",
                self.base
            )));
        }
        let token = self.bearer().await?;
        let mut resp = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| CentralError::Unreachable(describe(&e)))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            return Err(CentralError::Status {
                status,
                body: ApiError {
                    error: "download".into(),
                    message: format!("{url} could not be downloaded"),
                },
            });
        }
        let total = resp.content_length();
        let io = |e: std::io::Error| CentralError::Setup(format!("{}: {e}", to.display()));
        let mut file = tokio::fs::File::create(to).await.map_err(io)?;
        let mut hash = sha2::Sha256::new();
        let mut done = 0u64;
        progress(0, total);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| CentralError::Unreachable(describe(&e)))?
        {
            hash.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
            done += chunk.len() as u64;
            progress(done, total);
        }
        if total.is_some_and(|t| t != done) {
            return Err(CentralError::Unreachable(format!(
                "{url}: the download ended after {done} of {} bytes",
                total.unwrap_or_default()
            )));
        }
        file.sync_all().await.map_err(io)?;
        Ok(hex::encode(hash.finalize()))
    }
}
