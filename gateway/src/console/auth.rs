//! Console login: the operator signs in with the cluster secret (the
//! credential every internal API checks, compared the same constant-time
//! way) and gets a session cookie. Only a digest of each session token is
//! kept, so a lookup reveals nothing by its timing and a memory dump no
//! usable token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;

use super::ConsoleState;

pub(crate) const COOKIE: &str = "cairn_console";
/// The header every state-changing console call carries: a cross-site
/// form cannot set it, so a logged-in browser cannot be made to post.
pub(crate) const CSRF_HEADER: &str = "x-cairn-console";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest go first.
const MAX_SESSIONS: usize = 256;
/// A failed login waits this long (the secret is long and random; this
/// only keeps a script from hammering the check).
const FAILED_LOGIN_DELAY: Duration = Duration::from_millis(500);
/// The only user name: the console is for the cluster's operators.
pub(crate) const ADMIN_USER: &str = "admin";

#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Sessions {
    /// A new session's token (64 hex digits, 256 random bits).
    fn open(&self) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let mut sessions = self.by_digest.lock().expect("sessions lock");
        let now = Instant::now();
        sessions.retain(|_, expires| *expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, e)| **e).map(|(d, _)| *d)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(digest(&token), now + SESSION_TTL);
        token
    }

    fn is_open(&self, token: &str) -> bool {
        let sessions = self.by_digest.lock().expect("sessions lock");
        sessions
            .get(&digest(token))
            .is_some_and(|expires| *expires > Instant::now())
    }

    fn close(&self, token: &str) {
        let mut sessions = self.by_digest.lock().expect("sessions lock");
        sessions.remove(&digest(token));
    }
}

fn digest(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Login {
    pub user: String,
    pub password: String,
}

/// `POST /console/api/login`.
pub(crate) async fn login(
    State(state): State<ConsoleState>,
    axum::Json(login): axum::Json<Login>,
) -> Response {
    // Both checked, always: the answer does not say which was wrong.
    let user_ok = login.user == ADMIN_USER;
    let secret_ok = state.secret.matches(login.password.as_bytes());
    if !(user_ok && secret_ok) {
        tracing::warn!(user = %login.user, "console login refused");
        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
        return (StatusCode::UNAUTHORIZED, "wrong user name or password").into_response();
    }
    let token = state.sessions.open();
    let secure = if state.over_tls { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    tracing::info!("console login");
    (
        StatusCode::OK,
        [(header::SET_COOKIE, cookie)],
        axum::Json(serde_json::json!({"user": ADMIN_USER})),
    )
        .into_response()
}

/// `POST /console/api/logout`.
pub(crate) async fn logout(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers) {
        state.sessions.close(token);
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

/// Every console API call but login: a live session, and on anything but
/// a GET the CSRF header.
pub(crate) async fn require_session(
    State(state): State<ConsoleState>,
    request: Request,
    next: Next,
) -> Response {
    let signed_in = session_token(request.headers()).is_some_and(|t| state.sessions.is_open(t));
    if !signed_in {
        return (StatusCode::UNAUTHORIZED, "sign in to the console first").into_response();
    }
    if request.method() != Method::GET && !request.headers().contains_key(CSRF_HEADER) {
        return (
            StatusCode::FORBIDDEN,
            "console calls that change something need the x-cairn-console header",
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_token_only_until_closed() {
        let sessions = Sessions::default();
        let token = sessions.open();
        assert_eq!(token.len(), 64);
        assert!(sessions.is_open(&token));
        assert!(!sessions.is_open(&token[..63]));
        assert!(!sessions.is_open(""));
        sessions.close(&token);
        assert!(!sessions.is_open(&token));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "theme=dark; cairn_console=abc123; other=1"
                .parse()
                .expect("header"),
        );
        assert_eq!(session_token(&headers), Some("abc123"));
        let mut none = HeaderMap::new();
        none.insert(header::COOKIE, "cairn_console_x=1".parse().expect("header"));
        assert_eq!(session_token(&none), None);
    }

    #[test]
    fn sessions_are_bounded() {
        let sessions = Sessions::default();
        let first = sessions.open();
        for _ in 0..MAX_SESSIONS {
            sessions.open();
        }
        assert!(!sessions.is_open(&first));
        assert_eq!(sessions.by_digest.lock().expect("lock").len(), MAX_SESSIONS);
    }
}
