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

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
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
use transit_rules::RejectionKind;

use crate::ledger::{Ledger, SubmitError, MESSAGE_BYTES_MAX};

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
}

impl AppState {
    fn store(&self) -> &Arc<dyn EventStore> {
        self.ledger.store()
    }
}

/// Builds the router.
pub fn app(state: AppState) -> Router {
    let subscriptions = async_graphql_axum::GraphQLSubscription::new(state.graphql.clone());
    Router::new()
        .route("/graphql", get(graphiql).post(graphql_query))
        .route_service("/graphql/ws", subscriptions)
        .route("/v1/messages", post(submit_message))
        .route("/v1/movements/{mrn}/events", get(movement_events))
        .route("/v1/guarantees/{grn}/events", get(guarantee_events))
        .route("/v1/events", get(global_events))
        .route("/v1/checkpoint", get(latest_checkpoint))
        .route("/v1/proofs/inclusion", get(inclusion_proof))
        .route("/v1/proofs/consistency", get(consistency_proof))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MESSAGE_BYTES_MAX))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            CONCURRENT_REQUESTS_MAX,
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
}

/// The status of a signature refusal: 401 until the signature has verified (the sender is not
/// authenticated), 403 for what is refused about the key that made it.
fn signature_status(error: &SignatureError) -> StatusCode {
    match error {
        SignatureError::Missing
        | SignatureError::Malformed(_)
        | SignatureError::UnknownKey { .. }
        | SignatureError::BadSignature { .. } => StatusCode::UNAUTHORIZED,
        SignatureError::KeyNotYetValid { .. }
        | SignatureError::KeyExpired { .. }
        | SignatureError::KeyRevoked { .. }
        | SignatureError::KeyCountryMismatch { .. }
        | SignatureError::KeyOfficeNotAllowed { .. } => StatusCode::FORBIDDEN,
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
            ApiError::Submit(SubmitError::Store(_) | SubmitError::Decode(_))
            | ApiError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() {
            // Logged once here, with details; the client gets no internals.
            tracing::error!(error = %self, "request failed");
            "the ledger could not complete the request; it has been logged".to_owned()
        } else {
            self.to_string()
        };
        let body = Json(json!({ "error": ErrorBody { code, message } }));
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names the scheme that would authenticate the request.
            let scheme = [(header::WWW_AUTHENTICATE, transit_auth::HTTP_HEADER)];
            return (status, scheme, body).into_response();
        }
        (status, body).into_response()
    }
}

async fn submit_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let signature = signature_header(&headers)?;
    let signature = signature.as_deref();
    let submitted = if essence.eq_ignore_ascii_case("application/json") {
        state.ledger.submit_json_signed(&body, signature).await
    } else if essence.eq_ignore_ascii_case("application/xml")
        || essence.eq_ignore_ascii_case("text/xml")
    {
        state.ledger.submit_xml_signed(&body, signature).await
    } else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "content type {content_type:?} is not accepted; send application/json or application/xml"
        )));
    };
    let outcome = match submitted {
        Ok(outcome) => outcome,
        Err(e) => {
            let error = ApiError::Submit(e);
            let (status, code) = error.status_and_code();
            if status.is_client_error() {
                state.ledger.record_refusal(crate::refusals::Refused {
                    channel: "http",
                    raw: &body,
                    message: None,
                    signature,
                    code,
                    reason: &error.to_string(),
                });
            }
            return Err(error);
        }
    };
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

async fn latest_checkpoint(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
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
    State(state): State<AppState>,
    request: async_graphql_axum::GraphQLRequest,
) -> async_graphql_axum::GraphQLResponse {
    state.graphql.execute(request.into_inner()).await.into()
}

async fn graphiql() -> impl IntoResponse {
    axum::response::Html(
        async_graphql::http::GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
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
