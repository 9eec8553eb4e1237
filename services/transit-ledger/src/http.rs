//! The HTTP API (axum): message submission, stream and feed reads, the signed checkpoint,
//! Merkle proofs, and health. [`app`] builds the router so tests drive it with or without a
//! socket; the one error type [`ApiError`] maps every failure to a status and a JSON body.
//!
//! A submission's signature travels in the `Transit-Signature` header
//! ([`transit_auth::HTTP_HEADER`]). Refusals: 401 when the sender is not authenticated
//! (`MISSING_SIGNATURE`, `MALFORMED_SIGNATURE`, `UNKNOWN_KEY`, `BAD_SIGNATURE`), 403 when the
//! signature verified, so the key's holder is known, but that key may not sign this submission
//! now (`KEY_NOT_YET_VALID`, `KEY_EXPIRED`, `KEY_REVOKED`, `KEY_COUNTRY_MISMATCH`,
//! `KEY_OFFICE_NOT_ALLOWED`) or the sender's country may not record what the message says
//! (the rules' `Forbidden` rejections).
//!
//! Every route but `/healthz`, `/readyz` and the GraphiQL page (static HTML that can do nothing
//! without a token) needs a bearer token ([`crate::auth`]) granting one of the roles the
//! handler names through its [`Authorized`] extractor: submissions `national_system` (for the
//! token's own country: `PRINCIPAL_COUNTRY_MISMATCH` otherwise); GraphQL `analyst` or
//! `auditor` (over the websocket, the token comes in the `Authorization` header of the
//! upgrade, or in the `connection_init` payload as `{"Authorization": "Bearer ..."}` for
//! browsers); streams and the feed `auditor`; checkpoint and proofs `auditor` or
//! `national_system`; the Prometheus metrics (`/metrics`, [`crate::metrics`]) `operator`.
//! 401 (`MISSING_TOKEN`, `MALFORMED_TOKEN`, `UNKNOWN_TOKEN_KEY`, `INVALID_TOKEN`,
//! `TOKEN_EXPIRED`, `TOKEN_NOT_YET_VALID`) names the Bearer scheme; 403
//! `ROLE_REQUIRED`; 429 `RATE_LIMITED` with `Retry-After` when a principal exceeds its
//! [`crate::rate_limit::RateLimit`]. Without an authenticator (tests and tools only: `serve`
//! always has one) every caller is allowed.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use ledger_store::{EventStore, RecordedEvent, StoreError, StreamId, READ_EVENTS_MAX};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use transit_auth::SignatureError;
use transit_contract::events::{guarantee_stream, movement_stream};
use transit_contract::ids::{GuaranteeReference, Mrn};
use transit_contract::messages::InboundMessage;
use transit_rules::RejectionKind;

use crate::auth::{AuthError, Authenticator, Principal, Role};
use crate::ledger::{Ledger, SubmitError, MESSAGE_BYTES_MAX};
use crate::rate_limit::RateLimiter;

/// Longest time one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default page size of event reads.
pub const PAGE_EVENTS_DEFAULT: usize = 100;
/// Requests served at once; more wait.
pub const CONCURRENT_REQUESTS_MAX: usize = 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The command handler.
    pub ledger: Arc<Ledger>,
    /// The ledger's public key, hex, to check checkpoints.
    pub public_key_hex: String,
    /// The GraphQL schema over the projections.
    pub graphql: crate::graphql::LedgerSchema,
    /// Verifies bearer tokens; `None` lets every caller in (tests and tools only).
    pub auth: Option<Arc<Authenticator>>,
    /// Requests per principal.
    pub limiter: Option<Arc<RateLimiter>>,
    /// The service's metrics, served at `/metrics` and recorded by every request.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    fn store(&self) -> &Arc<dyn EventStore> {
        self.ledger.store()
    }
}

/// Builds the router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(graphql_query))
        .route("/graphql/ws", get(graphql_ws))
        .route("/v1/messages", post(submit_message))
        .route("/v1/movements/{mrn}/events", get(movement_events))
        .route("/v1/guarantees/{grn}/events", get(guarantee_events))
        .route("/v1/events", get(global_events))
        .route("/v1/checkpoint", get(latest_checkpoint))
        .route("/v1/proofs/inclusion", get(inclusion_proof))
        .route("/v1/proofs/consistency", get(consistency_proof))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MESSAGE_BYTES_MAX))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            CONCURRENT_REQUESTS_MAX,
        ))
        // Outside the limits, so that timeouts and waits for a slot are measured too.
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.http(),
            crate::metrics::track_http,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Every failure the API reports.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A submission failed.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// A read failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bad path or query value.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing there.
    #[error("{0}")]
    NotFound(String),
    /// The body is not in a format this endpoint takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The `Transit-Signature` header was sent more than once.
    #[error("{0}")]
    AmbiguousSignature(String),
    /// No valid bearer token (401), or it does not allow this (403).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The principal exceeded its request rate; retry after this long.
    #[error("too many requests from this principal; retry in {} ms", .0.as_millis())]
    RateLimited(Duration),
}

/// The status of a signature refusal (see [`SignatureError::kind`]).
fn signature_status(error: &SignatureError) -> StatusCode {
    match error.kind() {
        transit_auth::SignatureErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        transit_auth::SignatureErrorKind::Forbidden => StatusCode::FORBIDDEN,
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
}

impl ApiError {
    /// The HTTP status and the stable error code of this failure.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Submit(SubmitError::Malformed(_)) => (StatusCode::BAD_REQUEST, "MALFORMED"),
            ApiError::Submit(SubmitError::Invalid(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION")
            }
            ApiError::Submit(SubmitError::Rejected(r)) => {
                let status = match r.code.kind() {
                    RejectionKind::Conflict => StatusCode::CONFLICT,
                    RejectionKind::NotFound => StatusCode::NOT_FOUND,
                    RejectionKind::Invalid => StatusCode::BAD_REQUEST,
                    RejectionKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
                    RejectionKind::Forbidden => StatusCode::FORBIDDEN,
                };
                (status, r.code.as_str())
            }
            ApiError::Submit(SubmitError::Signature(e)) => (signature_status(e), e.as_str()),
            ApiError::AmbiguousSignature(_) => (StatusCode::UNAUTHORIZED, "MALFORMED_SIGNATURE"),
            ApiError::Auth(e) if e.is_unauthenticated() => (StatusCode::UNAUTHORIZED, e.code()),
            ApiError::Auth(e) => (StatusCode::FORBIDDEN, e.code()),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            ApiError::Submit(SubmitError::Contended) => {
                (StatusCode::SERVICE_UNAVAILABLE, "CONTENDED")
            }
            ApiError::Store(StoreError::Proof(_)) | ApiError::BadRequest(_) => {
                (StatusCode::BAD_REQUEST, "BAD_REQUEST")
            }
            ApiError::Store(StoreError::NotFound(_)) | ApiError::NotFound(_) => {
                (StatusCode::NOT_FOUND, "NOT_FOUND")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
            }
            ApiError::Submit(SubmitError::Store(StoreError::Poisoned(_)))
            | ApiError::Store(StoreError::Poisoned(_) | StoreError::Closed)
            | ApiError::Submit(SubmitError::Store(StoreError::Closed)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
            }
            // A full disk: nothing was written (the store cut its segment back), and the same
            // request succeeds once there is room again, without a restart.
            ApiError::Submit(SubmitError::Store(StoreError::Io(e)))
            | ApiError::Store(StoreError::Io(e))
                if e.kind() == std::io::ErrorKind::StorageFull =>
            {
                (StatusCode::INSUFFICIENT_STORAGE, "STORAGE_FULL")
            }
            ApiError::Submit(SubmitError::Store(_) | SubmitError::Decode(_))
            | ApiError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = self.respond(status, code);
        // For the metrics middleware, which counts refusals by code.
        response
            .extensions_mut()
            .insert(crate::metrics::ErrorCode(code));
        response
    }
}

impl ApiError {
    fn respond(self, status: StatusCode, code: &'static str) -> Response {
        let message = if status.is_server_error() {
            // Logged once here, with details; the client gets no internals.
            tracing::error!(error = %self, "request failed");
            if code == "STORAGE_FULL" {
                "the ledger's storage is full: nothing was recorded; retry later".to_owned()
            } else {
                "the ledger could not complete the request; it has been logged".to_owned()
            }
        } else {
            self.to_string()
        };
        let body = Json(json!({ "error": ErrorBody { code, message } }));
        if let ApiError::RateLimited(wait) = &self {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return (
                status,
                [(header::RETRY_AFTER, seconds.max(1).to_string())],
                body,
            )
                .into_response();
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names the scheme that would authenticate the request (RFC 6750
            // for bearer tokens, with the error when a token was sent and refused).
            let challenge = match &self {
                ApiError::Auth(AuthError::Missing) => BEARER_CHALLENGE.to_owned(),
                ApiError::Auth(_) => format!("{BEARER_CHALLENGE}, error=\"invalid_token\""),
                _ => transit_auth::HTTP_HEADER.to_owned(),
            };
            return (status, [(header::WWW_AUTHENTICATE, challenge)], body).into_response();
        }
        (status, body).into_response()
    }
}

/// The `WWW-Authenticate` challenge of a request without a valid token.
const BEARER_CHALLENGE: &str = "Bearer realm=\"transit-ledger\"";

/// A set of roles a route accepts (one of them is enough).
pub trait Roles: Send + Sync + 'static {
    /// The roles.
    const ROLES: &'static [Role];
}

/// `national_system`.
pub struct Submitters;
impl Roles for Submitters {
    const ROLES: &'static [Role] = &[Role::NationalSystem];
}

/// `analyst` or `auditor`.
pub struct Readers;
impl Roles for Readers {
    const ROLES: &'static [Role] = &[Role::Analyst, Role::Auditor];
}

/// `auditor`.
pub struct Auditors;
impl Roles for Auditors {
    const ROLES: &'static [Role] = &[Role::Auditor];
}

/// `auditor` or `national_system` (checkpoint and proofs: a national system checks that
/// what it submitted is in the log).
pub struct ProofReaders;
impl Roles for ProofReaders {
    const ROLES: &'static [Role] = &[Role::Auditor, Role::NationalSystem];
}

/// `operator` (metrics).
pub struct Operators;
impl Roles for Operators {
    const ROLES: &'static [Role] = &[Role::Operator];
}

/// A caller holding one of `R::ROLES`, within its rate limit: the principal, or `None` when
/// the service runs without an authenticator. Every handler but health and the GraphiQL
/// page takes one, so a route cannot be reached without its check.
pub struct Authorized<R: Roles>(pub Option<Principal>, PhantomData<R>);

impl AppState {
    /// The principal of these headers if it holds one of `roles` and is within its rate.
    fn authorize(
        &self,
        headers: &HeaderMap,
        roles: &[Role],
    ) -> Result<Option<Principal>, ApiError> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = values.next();
        if values.next().is_some() {
            return Err(
                AuthError::Malformed("send one Authorization header, not several".into()).into(),
            );
        }
        let principal = auth
            .authenticate_header(value.map(|v| v.as_bytes()))
            .inspect_err(
                |e| tracing::info!(code = e.code(), reason = %e, "request not authenticated"),
            )?;
        crate::auth::require_role(&principal, roles).inspect_err(
            |e| tracing::info!(principal = %principal.id(), code = e.code(), "request not allowed"),
        )?;
        if let Some(limiter) = &self.limiter {
            limiter
                .check(&principal.id(), Instant::now())
                .map_err(ApiError::RateLimited)?;
        }
        Ok(Some(principal))
    }
}

impl<R: Roles> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state
            .authorize(&parts.headers, R::ROLES)
            .map(|p| Authorized(p, PhantomData))
    }
}

async fn submit_message(
    Authorized(principal, _): Authorized<Submitters>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let format = if essence.eq_ignore_ascii_case("application/json") {
        crate::ledger::JSON
    } else if essence.eq_ignore_ascii_case("application/xml")
        || essence.eq_ignore_ascii_case("text/xml")
    {
        crate::ledger::XML
    } else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "content type {content_type:?} is not accepted; send application/json or application/xml"
        )));
    };
    let principal_id = principal.as_ref().map(Principal::id);
    let refuse = |error: ApiError, message: Option<&InboundMessage>, signature: Option<&str>| {
        let (status, code) = error.status_and_code();
        if status.is_client_error() {
            state.ledger.record_refusal(crate::refusals::Refused {
                channel: "http",
                raw: &body,
                message,
                signature,
                code,
                reason: &error.to_string(),
                principal: principal_id.as_deref(),
            });
        }
        error
    };
    let signature = signature_header(&headers).map_err(|e| refuse(e, None, None))?;
    let signature = signature.as_deref();
    let message = crate::ledger::decode_message(format, &body)
        .map_err(|e| refuse(ApiError::Submit(e), None, signature))?;
    // A national system speaks for its own country only, whatever key it signs with.
    if let Some(country) = principal.as_ref().and_then(|p| p.country.as_ref()) {
        if *country != message.sender.country {
            let error = ApiError::Auth(AuthError::CountryMismatch {
                principal: country.clone(),
                sender: message.sender.country.clone(),
            });
            return Err(refuse(error, Some(&message), signature));
        }
    }
    let outcome = state
        .ledger
        .submit_signed(&message, &body, format, signature)
        .await
        .map_err(|e| refuse(ApiError::Submit(e), Some(&message), signature))?;
    let status = if outcome.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)).into_response())
}

/// The `Transit-Signature` header's text, if sent. Bytes that are not text are passed on
/// (lossily) for the signature parser to refuse as `MALFORMED_SIGNATURE`; a header sent twice
/// is refused here, since which one was meant cannot be known.
fn signature_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(transit_auth::HTTP_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::AmbiguousSignature(format!(
            "malformed signature: send one {} header, not several",
            transit_auth::HTTP_HEADER
        )));
    }
    Ok(Some(String::from_utf8_lossy(value.as_bytes()).into_owned()))
}

#[derive(Deserialize)]
struct StreamPage {
    #[serde(default)]
    from: u64,
    limit: Option<usize>,
}

/// An event as the API shows it: its place in the log, and its data and metadata as JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventView {
    position: u64,
    stream: String,
    version: u64,
    event_id: String,
    event_type: String,
    schema_version: u16,
    leaf_hash: String,
    data: Value,
    metadata: Value,
}

fn as_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(
        |_| json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
    )
}

fn view(e: RecordedEvent) -> EventView {
    EventView {
        position: e.position,
        stream: e.stream.to_string(),
        version: e.version,
        event_id: e.event_id.to_string(),
        event_type: e.event_type,
        schema_version: e.schema_version,
        leaf_hash: ledger_merkle::to_hex(&e.leaf_hash),
        data: as_json(&e.data),
        metadata: as_json(&e.metadata),
    }
}

fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(PAGE_EVENTS_DEFAULT) {
        0 => Err(ApiError::BadRequest("limit must be at least 1".to_owned())),
        n if n > READ_EVENTS_MAX => Err(ApiError::BadRequest(format!(
            "limit must be at most {READ_EVENTS_MAX}"
        ))),
        n => Ok(n),
    }
}

async fn stream_events(
    state: &AppState,
    stream: String,
    page: StreamPage,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(page.limit)?;
    let stream = StreamId::new(stream).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let Some(last) = state.store().stream_version(&stream).await? else {
        return Err(ApiError::NotFound(format!("no events for {stream}")));
    };
    let events = state.store().read_stream(&stream, page.from, limit).await?;
    let next = events.last().map(|e| e.version + 1).filter(|v| *v <= last);
    Ok(Json(json!({
        "stream": stream.to_string(),
        "lastVersion": last,
        "events": events.into_iter().map(view).collect::<Vec<_>>(),
        "nextFrom": next,
    })))
}

async fn movement_events(
    _: Authorized<Auditors>,
    State(state): State<AppState>,
    Path(mrn): Path<String>,
    Query(page): Query<StreamPage>,
) -> Result<Json<Value>, ApiError> {
    let mrn: Mrn = mrn
        .parse()
        .map_err(|e: transit_contract::ids::IdError| ApiError::BadRequest(e.to_string()))?;
    stream_events(&state, movement_stream(&mrn), page).await
}

async fn guarantee_events(
    _: Authorized<Auditors>,
    State(state): State<AppState>,
    Path(grn): Path<String>,
    Query(page): Query<StreamPage>,
) -> Result<Json<Value>, ApiError> {
    let grn: GuaranteeReference = grn
        .parse()
        .map_err(|e: transit_contract::ids::IdError| ApiError::BadRequest(e.to_string()))?;
    stream_events(&state, guarantee_stream(&grn), page).await
}

async fn global_events(
    _: Authorized<Auditors>,
    State(state): State<AppState>,
    Query(page): Query<StreamPage>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(page.limit)?;
    let events = state.store().read_all(page.from, limit).await?;
    let head = state.store().head();
    let next = events.last().map(|e| e.position + 1);
    Ok(Json(json!({
        "head": head,
        "events": events.into_iter().map(view).collect::<Vec<_>>(),
        "nextFrom": next,
    })))
}

async fn latest_checkpoint(
    _: Authorized<ProofReaders>,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let checkpoint = match state.store().latest_checkpoint() {
        Some(cp) if cp.tree_size == state.store().head() => Some(cp),
        _ => state.store().checkpoint_now().await?,
    };
    let Some(checkpoint) = checkpoint else {
        return Err(ApiError::NotFound(
            "the log is empty: nothing to sign yet".to_owned(),
        ));
    };
    let note = checkpoint
        .note()
        .map_err(|e| ApiError::Store(StoreError::Invalid(e)))?;
    Ok(Json(json!({
        "checkpoint": checkpoint,
        "note": note,
        "publicKey": state.public_key_hex,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionQuery {
    position: u64,
    tree_size: Option<u64>,
}

async fn inclusion_proof(
    _: Authorized<ProofReaders>,
    State(state): State<AppState>,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<Value>, ApiError> {
    let size = match q.tree_size {
        Some(size) => size,
        None => state
            .store()
            .latest_checkpoint()
            .map(|cp| cp.tree_size)
            .filter(|size| *size > q.position)
            .unwrap_or_else(|| state.store().head()),
    };
    let proof = state.store().inclusion_proof(q.position, size).await?;
    Ok(Json(
        serde_json::to_value(proof).map_err(|e| ApiError::BadRequest(e.to_string()))?,
    ))
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

async fn consistency_proof(
    _: Authorized<ProofReaders>,
    State(state): State<AppState>,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<Value>, ApiError> {
    let to = q.to.unwrap_or_else(|| state.store().head());
    let proof = state.store().consistency_proof(q.from, to).await?;
    Ok(Json(
        serde_json::to_value(proof).map_err(|e| ApiError::BadRequest(e.to_string()))?,
    ))
}

async fn graphql_query(
    _: Authorized<Readers>,
    State(state): State<AppState>,
    request: async_graphql_axum::GraphQLRequest,
) -> async_graphql_axum::GraphQLResponse {
    let request = request.into_inner().data(state.metrics.graphql());
    state.graphql.execute(request).await.into()
}

/// GraphQL subscriptions (graphql-transport-ws). The token is checked on the upgrade when
/// the client sends an `Authorization` header; a browser cannot, so without one the
/// connection is accepted and the token must come in `connection_init`'s payload
/// (`{"Authorization": "Bearer ..."}`): no subscription runs before it verified.
async fn graphql_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    protocol: async_graphql_axum::GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let checked_on_upgrade = state.auth.is_none() || headers.contains_key(header::AUTHORIZATION);
    if checked_on_upgrade {
        state.authorize(&headers, Readers::ROLES)?;
    }
    let schema = state.graphql.clone();
    Ok(upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            async_graphql_axum::GraphQLWebSocket::new(stream, schema, protocol)
                .on_connection_init(move |payload| async move {
                    if !checked_on_upgrade {
                        let value = payload
                            .get("Authorization")
                            .or_else(|| payload.get("authorization"))
                            .and_then(|v| v.as_str())
                            .unwrap_or("");
                        let mut init = HeaderMap::new();
                        if let Ok(value) = axum::http::HeaderValue::from_str(value) {
                            if !value.is_empty() {
                                init.insert(header::AUTHORIZATION, value);
                            }
                        }
                        state.authorize(&init, Readers::ROLES).map_err(|e| {
                            let (_, code) = e.status_and_code();
                            async_graphql::Error::new(format!("{code}: {e}"))
                        })?;
                    }
                    Ok(async_graphql::Data::default())
                })
                .serve()
        }))
}

async fn graphiql() -> impl IntoResponse {
    axum::response::Html(
        async_graphql::http::GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
}

/// The metrics in Prometheus text format, for operators' scrapers.
async fn metrics(_: Authorized<Operators>, State(state): State<AppState>) -> Response {
    state.metrics.response()
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    // Ready when the log can take appends and serve reads.
    let check = match state.store().writable() {
        Ok(()) => state.store().read_all(0, 1).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match check {
        Ok(_) => Json(json!({ "status": "ready", "head": state.store().head() })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}
