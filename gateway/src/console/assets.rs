//! The console's page, script and style, compiled into the binary. The
//! content security policy allows only these (no inline script, nothing
//! from another origin), so even a key name crafted as markup that slipped
//! past the script's escaping could not run.

use axum::extract::Path;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

fn served(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, &str); 4] = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    (headers, body).into_response()
}

pub(crate) async fn to_console() -> Redirect {
    Redirect::to("/console/")
}

/// Browsers ask for it; there is none.
pub(crate) async fn no_icon() -> StatusCode {
    StatusCode::NO_CONTENT
}

pub(crate) async fn index() -> Response {
    served("text/html; charset=utf-8", INDEX)
}

pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "console.js" => served("text/javascript; charset=utf-8", SCRIPT),
        "console.css" => served("text/css; charset=utf-8", STYLE),
        _ => (StatusCode::NOT_FOUND, "no such console asset").into_response(),
    }
}
