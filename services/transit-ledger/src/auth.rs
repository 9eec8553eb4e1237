//! Who is calling the HTTP API: bearer tokens (JWT, RFC 7519) verified against the public keys
//! of configured issuers, and the roles they grant.
//!
//! A token is accepted when its header names (`kid`) a key of a configured issuer, its
//! algorithm is that key's (EdDSA or RS256: never `none`, never HMAC, whatever the token says),
//! its signature verifies, `iss` and `aud` are that issuer's, `sub` is present, and `exp` /
//! `nbf` hold at the **ledger's clock** (injected, so tests are deterministic) with the
//! issuer's leeway. The verification itself is `jsonwebtoken`'s (aws-lc-rs), not ours.
//!
//! Roles (claim `roles`, a list of names):
//!
//! | role | may |
//! |---|---|
//! | `national_system` | submit messages for its country (claim `country`, required), read the checkpoint and proofs |
//! | `analyst` | query GraphQL (the regional transit database, exposure, fraud signals) |
//! | `auditor` | query GraphQL, read every stream and the global feed, the checkpoint and proofs |
//! | `operator` | read the service's metrics (`/metrics`) |
//!
//! Issuers are configured in a TOML file (`ops/auth/issuers.toml` in development) naming,
//! per issuer, the `iss` and `aud` values and a JWKS file (RFC 7517) with its public keys.
//! [`TokenIssuer`] mints tokens with an Ed25519 key file: the development setup, and tests.
//!
//! Tokens are secrets: nothing here logs one, and errors never echo one back.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ledger_store::Clock;
use serde::{Deserialize, Serialize};
use transit_auth::SecretKeyFile;
use transit_contract::ids::CountryCode;

/// Longest `Authorization` header value taken (a token is a few hundred bytes).
pub const TOKEN_BYTES_MAX: usize = 8 * 1024;
/// Largest issuers file or JWKS file read.
pub const CONFIG_BYTES_MAX: usize = 1024 * 1024;
/// Clock skew allowed on `exp` and `nbf` when an issuer names none.
pub const LEEWAY_S_DEFAULT: u64 = 30;
/// The development issuer (`ops/auth/issuers.toml`).
pub const DEV_ISSUER: &str = "transit-ledger-dev";
/// The audience every development token names.
pub const DEV_AUDIENCE: &str = "transit-ledger";
/// The development issuers file, relative to the repository root: `serve`'s default.
pub const DEV_ISSUERS_PATH: &str = "ops/auth/issuers.toml";
/// The development issuer's secret key (committed on purpose: DEVELOPMENT ONLY).
pub const DEV_ISSUER_KEY_PATH: &str = "ops/auth/dev/issuer.key";
/// Lifetime of a token `transit-ledger token` mints unless told: 8 hours.
pub const TOKEN_TTL_S_DEFAULT: i64 = 8 * 3600;

/// What a principal may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A country's customs system: submits messages for that country.
    NationalSystem,
    /// An ECOWAS analyst: reads the projections through GraphQL.
    Analyst,
    /// An auditor: reads everything, including raw streams, the feed and proofs.
    Auditor,
    /// Operations: scrapes the service's metrics.
    Operator,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [
        Role::NationalSystem,
        Role::Analyst,
        Role::Auditor,
        Role::Operator,
    ];

    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::NationalSystem => "national_system",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?} (roles: national_system, analyst, auditor, operator)")
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's issuer (`iss`).
    pub issuer: String,
    /// Who it is at that issuer (`sub`).
    pub subject: String,
    /// What it may do (known roles only, sorted).
    pub roles: Vec<Role>,
    /// The country a national system acts for.
    pub country: Option<CountryCode>,
}

impl Principal {
    /// Whether it holds any of `roles`.
    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.roles.contains(r))
    }

    /// A stable name for logs, rate limits and the refusals log: `<iss>/<sub>`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.issuer, self.subject)
    }
}

/// Why a request was not authenticated (401) or not allowed (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("authentication required: send Authorization: Bearer <token>")]
    Missing,
    /// Not a bearer token, or not a JWT.
    #[error("malformed bearer token: {0}")]
    Malformed(String),
    /// The token's `kid` names no configured key.
    #[error("the token's key {0:?} is not a key of any trusted issuer")]
    UnknownKey(String),
    /// Signature, algorithm, issuer, audience or claims refused.
    #[error("invalid bearer token: {0}")]
    Invalid(String),
    /// `exp` passed.
    #[error("the bearer token expired")]
    Expired,
    /// `nbf` not reached.
    #[error("the bearer token is not valid yet")]
    NotYetValid,
    /// Valid token, but none of the roles this request needs.
    #[error("this request needs the role {needed}; the token grants {granted}")]
    RoleRequired {
        /// The roles that would do, `a or b`.
        needed: String,
        /// The token's roles.
        granted: String,
    },
    /// A national system submitting for another country.
    #[error(
        "a national system of {principal} may only submit messages sent by {principal}; this one is sent by {sender}"
    )]
    CountryMismatch {
        /// The token's country.
        principal: CountryCode,
        /// The message's `sender.country`.
        sender: CountryCode,
    },
}

impl AuthError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "MISSING_TOKEN",
            AuthError::Malformed(_) => "MALFORMED_TOKEN",
            AuthError::UnknownKey(_) => "UNKNOWN_TOKEN_KEY",
            AuthError::Invalid(_) => "INVALID_TOKEN",
            AuthError::Expired => "TOKEN_EXPIRED",
            AuthError::NotYetValid => "TOKEN_NOT_YET_VALID",
            AuthError::RoleRequired { .. } => "ROLE_REQUIRED",
            AuthError::CountryMismatch { .. } => "PRINCIPAL_COUNTRY_MISMATCH",
        }
    }

    /// Whether the caller is unknown (401) rather than known and refused (403).
    pub fn is_unauthenticated(&self) -> bool {
        !matches!(
            self,
            AuthError::RoleRequired { .. } | AuthError::CountryMismatch { .. }
        )
    }
}

/// The claims this ledger reads and [`TokenIssuer`] writes.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    country: Option<String>,
}

/// `aud`: one value or several (RFC 7519 §4.1.3).
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// One trusted public key.
struct TrustedKey {
    issuer: String,
    audience: String,
    leeway_s: u64,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The issuers file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuersFile {
    #[serde(default)]
    issuer: Vec<IssuerEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerEntry {
    /// The `iss` value.
    iss: String,
    /// The `aud` value tokens must name.
    audience: String,
    /// The issuer's JWKS file, relative to the issuers file.
    jwks: String,
    /// Clock skew allowed, seconds.
    leeway_s: Option<u64>,
}

/// An issuer, as [`Authenticator::new`] takes it.
pub struct TrustedIssuer {
    /// `iss`.
    pub iss: String,
    /// The `aud` its tokens must name.
    pub audience: String,
    /// Its public keys.
    pub keys: JwkSet,
    /// Clock skew allowed on `exp` / `nbf`.
    pub leeway_s: u64,
}

/// Verifies bearer tokens.
pub struct Authenticator {
    keys: HashMap<String, TrustedKey>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("Authenticator")
            .field("keys", &kids)
            .finish()
    }
}

/// The algorithm a key verifies: its JWK `alg` when given, else the one this ledger accepts
/// for its type (Ed25519 -> EdDSA, RSA -> RS256). Anything else is refused.
fn key_algorithm(jwk: &Jwk) -> Result<Algorithm, String> {
    use jsonwebtoken::jwk::AlgorithmParameters;
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        _ => return Err("only Ed25519 (OKP) and RSA keys are accepted".to_owned()),
    };
    if let Some(declared) = jwk.common.key_algorithm {
        let declared =
            Algorithm::try_from(declared).map_err(|e| format!("algorithm {declared:?}: {e}"))?;
        if declared != by_type {
            return Err(format!(
                "algorithm {declared:?} is not accepted for this key (accepted: {by_type:?})"
            ));
        }
    }
    Ok(by_type)
}

impl Authenticator {
    /// Trusts the keys of `issuers`; token times are judged at `clock`. Every key needs a
    /// `kid`, unique across issuers.
    pub fn new(issuers: Vec<TrustedIssuer>, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let mut keys = HashMap::new();
        for issuer in issuers {
            if issuer.iss.is_empty() || issuer.audience.is_empty() {
                return Err("an issuer needs a non-empty iss and audience".to_owned());
            }
            for jwk in &issuer.keys.keys {
                let kid = jwk
                    .common
                    .key_id
                    .clone()
                    .ok_or_else(|| format!("issuer {:?}: a key has no kid", issuer.iss))?;
                let algorithm = key_algorithm(jwk)
                    .map_err(|e| format!("issuer {:?}, key {kid}: {e}", issuer.iss))?;
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| format!("issuer {:?}, key {kid}: {e}", issuer.iss))?;
                let trusted = TrustedKey {
                    issuer: issuer.iss.clone(),
                    audience: issuer.audience.clone(),
                    leeway_s: issuer.leeway_s,
                    algorithm,
                    key,
                };
                if keys.insert(kid.clone(), trusted).is_some() {
                    return Err(format!("key id {kid} is configured twice"));
                }
            }
        }
        if keys.is_empty() {
            return Err("no issuer key configured: no token could ever be accepted".to_owned());
        }
        Ok(Self { keys, clock })
    }

    /// Reads an issuers file (TOML) and the JWKS files it names.
    pub fn load(path: &Path, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let text = read_bounded_text(path)?;
        let file: IssuersFile = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut issuers = Vec::new();
        for entry in file.issuer {
            let jwks_path = base.join(&entry.jwks);
            let jwks_text = read_bounded_text(&jwks_path)?;
            let keys: JwkSet = serde_json::from_str(&jwks_text)
                .map_err(|e| anyhow::anyhow!("{}: not a JWKS: {e}", jwks_path.display()))?;
            issuers.push(TrustedIssuer {
                iss: entry.iss,
                audience: entry.audience,
                keys,
                leeway_s: entry.leeway_s.unwrap_or(LEEWAY_S_DEFAULT),
            });
        }
        Self::new(issuers, clock).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// The principal of an `Authorization` header value (`Bearer <token>`).
    pub fn authenticate_header(&self, value: Option<&[u8]>) -> Result<Principal, AuthError> {
        let value = value.ok_or(AuthError::Missing)?;
        if value.len() > TOKEN_BYTES_MAX {
            return Err(AuthError::Malformed(format!(
                "the Authorization header is longer than {TOKEN_BYTES_MAX} bytes"
            )));
        }
        let text = std::str::from_utf8(value)
            .map_err(|_| AuthError::Malformed("the Authorization header is not text".into()))?;
        let (scheme, token) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| AuthError::Malformed("expected Authorization: Bearer <token>".into()))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Malformed(
                "expected the Bearer scheme (Authorization: Bearer <token>)".into(),
            ));
        }
        self.verify(token.trim())
    }

    /// The principal of a token.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(AuthError::Malformed("token too long".into()));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Malformed(format!("not a JWT ({e})")))?;
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Malformed("the token's header names no key (kid)".into()))?;
        let trusted = self
            .keys
            .get(&kid)
            .ok_or_else(|| AuthError::UnknownKey(kid.clone()))?;
        if header.alg != trusted.algorithm {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not the key's ({:?})",
                header.alg, trusted.algorithm
            )));
        }
        let mut validation = Validation::new(trusted.algorithm);
        validation.set_issuer(&[&trusted.issuer]);
        validation.set_audience(&[&trusted.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Times are judged below at the ledger's clock, not the machine's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<Claims>(token, &trusted.key, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    AuthError::Invalid("bad signature".into())
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    AuthError::Invalid("wrong issuer (iss)".into())
                }
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    AuthError::Invalid("wrong audience (aud)".into())
                }
                jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(c) => {
                    AuthError::Invalid(format!("claim {c} missing"))
                }
                _ => AuthError::Invalid(e.to_string()),
            },
        )?;
        let claims = data.claims;
        let now_s = self.clock.now_millis().div_euclid(1000);
        let leeway = i64::try_from(trusted.leeway_s).unwrap_or(i64::MAX);
        if claims.exp.saturating_add(leeway) <= now_s {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = claims.nbf {
            if nbf.saturating_sub(leeway) > now_s {
                return Err(AuthError::NotYetValid);
            }
        }
        if claims.sub.is_empty() {
            return Err(AuthError::Invalid("empty subject (sub)".into()));
        }
        let mut roles: Vec<Role> = claims.roles.iter().filter_map(|r| r.parse().ok()).collect();
        roles.sort();
        roles.dedup();
        let country = match claims.country.as_deref() {
            Some(c) => Some(
                c.parse::<CountryCode>()
                    .map_err(|e| AuthError::Invalid(format!("claim country: {e}")))?,
            ),
            None => None,
        };
        if roles.contains(&Role::NationalSystem) && country.is_none() {
            return Err(AuthError::Invalid(
                "a national_system token needs the claim country".into(),
            ));
        }
        Ok(Principal {
            issuer: claims.iss,
            subject: claims.sub,
            roles,
            country,
        })
    }
}

/// Checks that `principal` holds one of `roles`.
pub fn require_role(principal: &Principal, roles: &[Role]) -> Result<(), AuthError> {
    if principal.has_any(roles) {
        return Ok(());
    }
    let names = |rs: &[Role]| {
        if rs.is_empty() {
            "none".to_owned()
        } else {
            rs.iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        }
    };
    Err(AuthError::RoleRequired {
        needed: names(roles),
        granted: names(&principal.roles),
    })
}

fn read_bounded_text(path: &Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(CONFIG_BYTES_MAX as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if text.len() > CONFIG_BYTES_MAX {
        anyhow::bail!("{} is larger than {CONFIG_BYTES_MAX} bytes", path.display());
    }
    Ok(text)
}

/// The PKCS #8 (RFC 8410) DER form of an Ed25519 secret key: what `jsonwebtoken` signs with.
fn ed25519_pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING seed } }
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(seed);
    der
}

/// What a token says (input of [`TokenIssuer::issue`]).
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// `sub`.
    pub subject: String,
    /// `roles`.
    pub roles: Vec<Role>,
    /// `country` (required with [`Role::NationalSystem`]).
    pub country: Option<CountryCode>,
    /// `iat` and `nbf`, Unix milliseconds.
    pub issued_at_ms: i64,
    /// Lifetime, seconds (`exp` = `iat` + this).
    pub ttl_s: i64,
}

/// Mints EdDSA tokens with an Ed25519 key file (the format of `keys generate`): the
/// development issuer, tests, and a small deployment that runs its own issuer.
pub struct TokenIssuer {
    kid: String,
    iss: String,
    audience: String,
    key: EncodingKey,
    public_key: [u8; 32],
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .field("iss", &self.iss)
            .field("audience", &self.audience)
            .finish()
    }
}

impl TokenIssuer {
    /// An issuer named `iss` for `audience`, signing with `key` (its id is the `kid`).
    pub fn new(key: &SecretKeyFile, iss: &str, audience: &str) -> Self {
        Self {
            kid: key.key_id.to_string(),
            iss: iss.to_owned(),
            audience: audience.to_owned(),
            key: EncodingKey::from_ed_der(&ed25519_pkcs8(&key.signing_key.to_bytes())),
            public_key: key.verifying_key().to_bytes(),
        }
    }

    /// Reads the key file at `path`.
    pub fn from_key_file(path: &Path, iss: &str, audience: &str) -> anyhow::Result<Self> {
        let text = read_bounded_text(path)?;
        let key = SecretKeyFile::from_toml_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Self::new(&key, iss, audience))
    }

    /// A signed token.
    pub fn issue(&self, request: &TokenRequest) -> Result<String, String> {
        if request.roles.contains(&Role::NationalSystem) && request.country.is_none() {
            return Err("a national_system token needs a country".to_owned());
        }
        if request.ttl_s <= 0 {
            return Err("the lifetime must be positive".to_owned());
        }
        let iat = request.issued_at_ms.div_euclid(1000);
        let mut jti = [0u8; 16];
        getrandom::getrandom(&mut jti).map_err(|e| format!("no randomness: {e}"))?;
        let claims = Claims {
            iss: self.iss.clone(),
            sub: request.subject.clone(),
            aud: Audience::One(self.audience.clone()),
            exp: iat.saturating_add(request.ttl_s),
            nbf: Some(iat),
            iat: Some(iat),
            jti: Some(hex::encode(jti)),
            roles: request
                .roles
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            country: request.country.as_ref().map(|c| c.as_str().to_owned()),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }

    /// The JWKS (RFC 7517) a ledger trusts this issuer with.
    pub fn jwks(&self) -> serde_json::Value {
        use base64::Engine as _;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.public_key);
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": x,
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }]
        })
    }

    /// This issuer as an [`Authenticator`] would trust it.
    pub fn trusted(&self) -> Result<TrustedIssuer, String> {
        let keys: JwkSet = serde_json::from_value(self.jwks()).map_err(|e| e.to_string())?;
        Ok(TrustedIssuer {
            iss: self.iss.clone(),
            audience: self.audience.clone(),
            keys,
            leeway_s: LEEWAY_S_DEFAULT,
        })
    }
}

/// [`Authenticator::load`] for `serve`, saying how to get a configuration when it is missing.
pub fn load_for_serve(path: &Path, clock: Arc<dyn Clock>) -> anyhow::Result<Authenticator> {
    if !path.exists() {
        anyhow::bail!(
            "auth config {} not found: the HTTP API serves nothing but health checks without \
             bearer tokens of a trusted issuer. Run from the repository root to use the \
             development issuer ({DEV_ISSUERS_PATH}), or pass --auth-config PATH (or set \
             TRANSIT_LEDGER_AUTH_CONFIG); see ops/auth/README.md",
            path.display()
        );
    }
    Authenticator::load(path, clock)
}

/// A throwaway issuer (random key) trusted by the returned authenticator, and an
/// analyst+auditor token of it valid for a day: for benchmarks, which must pay for token
/// verification as the service does.
pub fn bench_issuer(clock: Arc<dyn Clock>) -> anyhow::Result<(Authenticator, String)> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let (signing_key, _) = transit_auth::generate_keypair(seed);
    let key = SecretKeyFile {
        key_id: "bench-issuer"
            .parse()
            .map_err(|e| anyhow::anyhow!("key id: {e}"))?,
        signing_key,
    };
    let issuer = TokenIssuer::new(&key, "transit-ledger-bench", DEV_AUDIENCE);
    let token = issuer
        .issue(&TokenRequest {
            subject: "bench".into(),
            roles: vec![Role::Analyst, Role::Auditor],
            country: None,
            issued_at_ms: clock.now_millis(),
            ttl_s: 86_400,
        })
        .map_err(|e| anyhow::anyhow!(e))?;
    let auth = Authenticator::new(
        vec![issuer.trusted().map_err(|e| anyhow::anyhow!(e))?],
        clock,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    Ok((auth, token))
}

/// `token` flags.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// A role to grant: national_system, analyst, auditor or operator (repeat, or separate
    /// with commas).
    #[arg(long = "role", value_delimiter = ',', required_unless_present = "jwks")]
    pub roles: Vec<Role>,
    /// The country a national system acts for (ISO 3166-1 alpha-2), e.g. TG.
    #[arg(long)]
    pub country: Option<CountryCode>,
    /// Who the token is for (`sub`); default `<role>` or `<country>-<role>`.
    #[arg(long)]
    pub subject: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = TOKEN_TTL_S_DEFAULT)]
    pub ttl_s: i64,
    /// The issuer's Ed25519 secret key file; default the development issuer's.
    #[arg(long, default_value = DEV_ISSUER_KEY_PATH)]
    pub key: std::path::PathBuf,
    /// `iss`.
    #[arg(long, default_value = DEV_ISSUER)]
    pub issuer: String,
    /// `aud`.
    #[arg(long, default_value = DEV_AUDIENCE)]
    pub audience: String,
    /// Print the key's JWKS (the public key, for the ledger's issuers file) instead of a token.
    #[arg(long)]
    pub jwks: bool,
}

/// `transit-ledger token`.
pub fn token_command(args: TokenArgs) -> anyhow::Result<()> {
    let issuer = TokenIssuer::from_key_file(&args.key, &args.issuer, &args.audience).map_err(
        |e| {
            if args.key == Path::new(DEV_ISSUER_KEY_PATH) && !args.key.exists() {
                anyhow::anyhow!(
                    "{e} (run from the repository root to use the development issuer, or pass --key)"
                )
            } else {
                e
            }
        },
    )?;
    if args.jwks {
        println!("{:#}", issuer.jwks());
        return Ok(());
    }
    let subject = args.subject.unwrap_or_else(|| {
        let roles: Vec<&str> = args.roles.iter().map(|r| r.as_str()).collect();
        match &args.country {
            Some(c) => format!("{}-{}", c.as_str().to_ascii_lowercase(), roles.join("+")),
            None => roles.join("+"),
        }
    });
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow::anyhow!("the system clock is before 1970"))?
        .as_millis();
    let token = issuer
        .issue(&TokenRequest {
            subject,
            roles: args.roles,
            country: args.country,
            issued_at_ms: i64::try_from(now_ms)?,
            ttl_s: args.ttl_s,
        })
        .map_err(|e| anyhow::anyhow!(e))?;
    println!("{token}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ledger_store::ManualClock;

    const NOW_MS: i64 = 1_780_000_000_000;

    fn issuer(name: &str, seed: u8) -> TokenIssuer {
        let (signing_key, _) = transit_auth::generate_keypair([seed; 32]);
        let key = SecretKeyFile {
            key_id: format!("{name}-key").parse().unwrap(),
            signing_key,
        };
        TokenIssuer::new(&key, name, "transit-ledger")
    }

    fn request(roles: &[Role], country: Option<&str>) -> TokenRequest {
        TokenRequest {
            subject: "tester".into(),
            roles: roles.to_vec(),
            country: country.map(|c| c.parse().unwrap()),
            issued_at_ms: NOW_MS,
            ttl_s: 3600,
        }
    }

    fn authenticator(issuers: &[&TokenIssuer], now_ms: i64) -> Authenticator {
        let trusted = issuers.iter().map(|i| i.trusted().unwrap()).collect();
        Authenticator::new(trusted, Arc::new(ManualClock::new(now_ms))).unwrap()
    }

    #[test]
    fn a_minted_token_verifies_with_its_roles_and_country() {
        let dev = issuer("dev", 1);
        let auth = authenticator(&[&dev], NOW_MS);
        let token = dev
            .issue(&request(&[Role::NationalSystem], Some("TG")))
            .unwrap();
        let p = auth
            .authenticate_header(Some(format!("Bearer {token}").as_bytes()))
            .unwrap();
        assert_eq!(p.roles, vec![Role::NationalSystem]);
        assert_eq!(p.country.as_ref().unwrap().as_str(), "TG");
        assert_eq!(p.id(), "dev/tester");
    }

    #[test]
    fn times_are_judged_at_the_ledger_clock_with_leeway() {
        let dev = issuer("dev", 1);
        let token = dev.issue(&request(&[Role::Analyst], None)).unwrap();
        let leeway_ms = LEEWAY_S_DEFAULT as i64 * 1000;
        let at = |ms| authenticator(&[&dev], ms).verify(&token);
        assert!(at(NOW_MS + 3_600_000 + leeway_ms - 1000).is_ok());
        assert_eq!(at(NOW_MS + 3_600_000 + leeway_ms), Err(AuthError::Expired));
        assert!(at(NOW_MS - leeway_ms).is_ok());
        assert_eq!(at(NOW_MS - leeway_ms - 1000), Err(AuthError::NotYetValid));
    }

    #[test]
    fn tokens_of_an_untrusted_key_or_issuer_or_audience_are_refused() {
        let dev = issuer("dev", 1);
        let other = issuer("other", 2);
        let auth = authenticator(&[&dev], NOW_MS);
        let foreign = other.issue(&request(&[Role::Auditor], None)).unwrap();
        assert_eq!(
            auth.verify(&foreign),
            Err(AuthError::UnknownKey("other-key".into()))
        );
        // Same kid, another secret: a forged token.
        let (forger_key, _) = transit_auth::generate_keypair([9; 32]);
        let forger = TokenIssuer::new(
            &SecretKeyFile {
                key_id: "dev-key".parse().unwrap(),
                signing_key: forger_key,
            },
            "dev",
            "transit-ledger",
        );
        let forged = forger.issue(&request(&[Role::Auditor], None)).unwrap();
        assert_eq!(auth.verify(&forged).unwrap_err().code(), "INVALID_TOKEN");
        // Right key, wrong audience.
        let (dev_key, _) = transit_auth::generate_keypair([1; 32]);
        let elsewhere = TokenIssuer::new(
            &SecretKeyFile {
                key_id: "dev-key".parse().unwrap(),
                signing_key: dev_key,
            },
            "dev",
            "some-other-service",
        );
        let token = elsewhere.issue(&request(&[Role::Auditor], None)).unwrap();
        assert_eq!(
            auth.verify(&token),
            Err(AuthError::Invalid("wrong audience (aud)".into()))
        );
    }

    #[test]
    fn unsigned_and_hmac_tokens_are_refused_whatever_their_header_says() {
        use base64::Engine as _;
        let dev = issuer("dev", 1);
        let auth = authenticator(&[&dev], NOW_MS);
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let claims = serde_json::json!({
            "iss": "dev", "sub": "x", "aud": "transit-ledger", "exp": NOW_MS / 1000 + 60,
            "roles": ["auditor"]
        });
        let none = format!(
            "{}.{}.",
            b64(serde_json::json!({"alg": "none", "kid": "dev-key"})),
            b64(claims.clone())
        );
        assert!(auth.verify(&none).is_err());
        // HS256 keyed with the public key: the classic algorithm confusion.
        let header = b64(serde_json::json!({"alg": "HS256", "kid": "dev-key"}));
        let forged = format!("{header}.{}.AAAA", b64(claims));
        assert!(auth.verify(&forged).is_err());
    }

    #[test]
    fn a_national_system_token_needs_a_country_and_unknown_roles_grant_nothing() {
        let dev = issuer("dev", 1);
        assert!(dev.issue(&request(&[Role::NationalSystem], None)).is_err());
        let auth = authenticator(&[&dev], NOW_MS);
        let token = dev.issue(&request(&[], None)).unwrap();
        let p = auth.verify(&token).unwrap();
        assert!(p.roles.is_empty());
        let e = require_role(&p, &[Role::Analyst, Role::Auditor]).unwrap_err();
        assert_eq!(e.code(), "ROLE_REQUIRED");
        assert!(!e.is_unauthenticated());
        assert_eq!(
            e.to_string(),
            "this request needs the role analyst or auditor; the token grants none"
        );
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason_and_never_echo_the_token() {
        let dev = issuer("dev", 1);
        let auth = authenticator(&[&dev], NOW_MS);
        assert_eq!(auth.authenticate_header(None), Err(AuthError::Missing));
        let e = auth
            .authenticate_header(Some(b"Basic c2VjcmV0LXBhc3N3b3Jk"))
            .unwrap_err();
        assert_eq!(e.code(), "MALFORMED_TOKEN");
        assert!(!e.to_string().contains("c2VjcmV0"));
        let e = auth
            .authenticate_header(Some(b"Bearer secret-not-a-jwt"))
            .unwrap_err();
        assert!(!e.to_string().contains("secret-not-a-jwt"), "{e}");
        assert!(auth.authenticate_header(Some(&[0xff, 0xfe])).is_err());
    }

    #[test]
    fn the_pkcs8_form_signs_like_the_dalek_key() {
        // The JWKS public key must be the key file's: a token verifies only if the DER we
        // hand jsonwebtoken is the same secret.
        let dev = issuer("dev", 7);
        let (_, public) = transit_auth::generate_keypair([7; 32]);
        assert_eq!(dev.public_key, public.to_bytes());
        let auth = authenticator(&[&dev], NOW_MS);
        assert!(auth
            .verify(&dev.issue(&request(&[Role::Auditor], None)).unwrap())
            .is_ok());
    }
}
