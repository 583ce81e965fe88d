//! The HTTP routes of `scfnet serve` and the middleware that times and counts every request.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use scfnet_data::DataError;
use scfnet_predict::{decode_bytes, Job, Submit};

use super::App;

/// The web page, served from the binary (no outside resources).
const PAGE: &str = include_str!("page.html");

/// Seconds a client is asked to wait when the queue is full.
const RETRY_AFTER_S: &str = "1";

/// The routes, with the body limit, the request timeout and the metrics middleware.
pub fn router(app: Arc<App>, max_body: usize) -> Router {
    let timeout = app.timeout;
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/model", get(model))
        .route("/metrics", get(metrics))
        .route("/v1/saliency", post(saliency))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), track))
        .with_state(app)
}

/// Times every request and counts it by status.
async fn track(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(req).await;
    app.metrics
        .request(response.status().as_u16(), started.elapsed());
    response
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn model(State(app): State<Arc<App>>) -> Json<super::ModelInfo> {
    Json(app.model.clone())
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let depth = app
        .batcher
        .stats()
        .queued
        .load(std::sync::atomic::Ordering::SeqCst);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(depth),
    )
        .into_response()
}

/// `?cutout=true`.
#[derive(serde::Deserialize, Default)]
struct SaliencyQuery {
    #[serde(default)]
    cutout: bool,
}

/// A refusal with its reason as text.
fn refuse(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut text = reason.into();
    text.push('\n');
    (status, text).into_response()
}

/// The image bytes of the request: its body, or the first file field of a multipart form.
async fn image_bytes(app: &Arc<App>, req: Request) -> Result<Bytes, Response> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_form {
        return Bytes::from_request(req, app)
            .await
            .map_err(IntoResponse::into_response);
    }
    let mut form = Multipart::from_request(req, app)
        .await
        .map_err(IntoResponse::into_response)?;
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.file_name().is_some() || field.name() == Some("image") => {
                return field.bytes().await.map_err(IntoResponse::into_response)
            }
            Ok(Some(_)) => continue,
            Ok(None) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "the form holds no file (send the image as a file field, or as the body)",
                ))
            }
            Err(e) => return Err(e.into_response()),
        }
    }
}

async fn saliency(
    State(app): State<Arc<App>>,
    Query(query): Query<SaliencyQuery>,
    req: Request,
) -> Response {
    let bytes = match image_bytes(&app, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if bytes.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "empty body: send the image's bytes",
        );
    }
    // The status and the reason as text: the error itself is large to move between threads.
    let decoded = tokio::task::spawn_blocking(move || {
        decode_bytes(Vec::from(bytes), Path::new("the uploaded image")).map_err(|e| {
            let status = match e {
                scfnet_predict::Error::Data(DataError::TooLarge { .. }) => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                _ => StatusCode::BAD_REQUEST,
            };
            (status, e.to_string())
        })
    })
    .await;
    let image = match decoded {
        Ok(Ok(image)) => image,
        Ok(Err((status, reason))) => return refuse(status, reason),
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("decoding failed: {e}"),
            )
        }
    };
    let (reply, answer) = mpsc::sync_channel(1);
    let job = Job {
        image,
        cutout: query.cutout,
        reply,
    };
    match app.batcher.submit(job) {
        Ok(()) => {}
        Err(Submit::Full(_)) => {
            let mut r = refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: the queue is full, try again shortly",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
            return r;
        }
        Err(Submit::Stopped(_)) => {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping")
        }
    }
    match tokio::task::spawn_blocking(move || answer.recv()).await {
        Ok(Ok(Ok(served))) => {
            let png = if query.cutout {
                served.cutout_png.unwrap_or_default()
            } else {
                served.map_png
            };
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "image/png")
                .header("x-batch-size", served.batch.to_string())
                .body(Body::from(png))
                .unwrap_or_else(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
        Ok(Ok(Err(reason))) => refuse(StatusCode::INTERNAL_SERVER_ERROR, reason),
        Ok(Err(_)) | Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the network thread stopped before answering",
        ),
    }
}
