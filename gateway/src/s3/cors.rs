//! CORS: Put/Get/DeleteBucketCors, the browser's preflight `OPTIONS`
//! (answered here: s3s has no route for it), and the
//! `Access-Control-*` headers on actual requests from an allowed origin.
//!
//! The middleware runs before s3s: a preflight is unsigned by design, so it
//! is answered from the bucket's CORS rules alone (no policy applies to
//! it, as on S3). Requests without an `Origin` header pass straight
//! through, untouched and without a bucket lookup.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_meta_api::model::{BucketSetting, Cors, CorsRule};
use s3s::dto::*;
use s3s::host::S3Host;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{BaseDomain, Cairn};

/// S3's limit on rules per configuration.
const MAX_RULES: usize = 100;
const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

impl Cairn {
    pub(super) async fn put_bucket_cors_op(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let input = req.input;
        let cors = from_document(input.cors_configuration)?;
        self.require_bucket(&input.bucket).await?;
        self.set_bucket(&input.bucket, BucketSetting::Cors { cors: Some(cors) })
            .await?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    pub(super) async fn get_bucket_cors_op(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        let cors = bucket.cors.ok_or_else(|| {
            s3_error!(
                NoSuchCORSConfiguration,
                "The CORS configuration does not exist"
            )
        })?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(cors.rules.into_iter().map(to_document).collect()),
        }))
    }

    pub(super) async fn delete_bucket_cors_op(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        self.set_bucket(&req.input.bucket, BucketSetting::Cors { cors: None })
            .await?;
        let mut response = S3Response::new(DeleteBucketCorsOutput::default());
        response.status = Some(StatusCode::NO_CONTENT);
        Ok(response)
    }
}

fn at_most_one_star(values: &[String], what: &str) -> S3Result<()> {
    match values.iter().find(|v| v.matches('*').count() > 1) {
        Some(bad) => Err(s3_error!(
            InvalidRequest,
            "{what} \"{bad}\" can not have more than one wildcard."
        )),
        None => Ok(()),
    }
}

fn from_document(config: CORSConfiguration) -> S3Result<Cors> {
    if config.cors_rules.is_empty() || config.cors_rules.len() > MAX_RULES {
        return Err(s3_error!(
            MalformedXML,
            "A CORS configuration has 1 to {MAX_RULES} rules"
        ));
    }
    let mut rules = Vec::with_capacity(config.cors_rules.len());
    for rule in config.cors_rules {
        if let Some(bad) = rule
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(s3_error!(
                InvalidRequest,
                "Found unsupported HTTP method in CORS config. Unsupported method is {bad}"
            ));
        }
        if rule.allowed_methods.is_empty() || rule.allowed_origins.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "Each CORS rule names at least one AllowedMethod and one AllowedOrigin"
            ));
        }
        at_most_one_star(&rule.allowed_origins, "AllowedOrigin")?;
        let allowed_headers = rule.allowed_headers.unwrap_or_default();
        at_most_one_star(&allowed_headers, "AllowedHeader")?;
        rules.push(CorsRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers,
            expose_headers: rule.expose_headers.unwrap_or_default(),
            max_age_seconds: rule.max_age_seconds,
        });
    }
    Ok(Cors { rules })
}

fn to_document(rule: CorsRule) -> CORSRule {
    CORSRule {
        id: rule.id,
        allowed_origins: rule.allowed_origins,
        allowed_methods: rule.allowed_methods,
        allowed_headers: (!rule.allowed_headers.is_empty()).then_some(rule.allowed_headers),
        expose_headers: (!rule.expose_headers.is_empty()).then_some(rule.expose_headers),
        max_age_seconds: rule.max_age_seconds,
    }
}

/// A pattern with at most one `*` (any run of characters, maybe none).
fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match pattern.split_once('*') {
        None => eq(pattern, text),
        Some((prefix, suffix)) => {
            text.len() >= prefix.len() + suffix.len()
                && text.is_char_boundary(prefix.len())
                && text.is_char_boundary(text.len() - suffix.len())
                && eq(&text[..prefix.len()], prefix)
                && eq(&text[text.len() - suffix.len()..], suffix)
        }
    }
}

/// The first rule allowing `origin` to use `method` with the request
/// headers `headers` (a preflight's `Access-Control-Request-Headers`).
fn matching_rule<'a>(
    cors: &'a Cors,
    origin: &str,
    method: &str,
    headers: &[&str],
) -> Option<&'a CorsRule> {
    cors.rules.iter().find(|rule| {
        rule.allowed_origins
            .iter()
            .any(|o| wildcard_match(o, origin, false))
            && rule.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                rule.allowed_headers
                    .iter()
                    .any(|allowed| wildcard_match(allowed, h, true))
            })
    })
}

/// What the CORS middleware needs: the service (bucket records) and how
/// to tell a bucket from the Host header.
/// Cheap to clone: axum clones a middleware's state for every request.
#[derive(Debug, Clone)]
pub struct CorsState(Arc<CorsInner>);

#[derive(Debug)]
struct CorsInner {
    cairn: Cairn,
    domain: Option<BaseDomain>,
}

impl CorsState {
    pub fn new(cairn: Cairn, domain: Option<BaseDomain>) -> Self {
        Self(Arc::new(CorsInner { cairn, domain }))
    }
}

impl CorsInner {
    /// The bucket a request addresses: `bucket.<domain>`, else the first
    /// path segment.
    fn bucket_of(&self, request: &Request) -> Option<String> {
        if let Some(domain) = &self.domain
            && let Some(host) = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
            && let Ok(parsed) = domain.parse_host_header(host)
            && let Some(bucket) = parsed.bucket()
        {
            return Some(bucket.to_owned());
        }
        request
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|b| !b.is_empty())
            .map(str::to_owned)
    }

    async fn cors_of(&self, bucket: Option<&str>) -> Option<Cors> {
        self.cairn
            .known_bucket(bucket?)
            .await
            .and_then(|known| known.record.cors.clone())
    }
}

fn text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn cors_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// The headers an allowed origin gets (`*` when the rule allows any).
fn allow(headers: &mut HeaderMap, rule: &CorsRule, origin: &str) {
    let any = rule.allowed_origins.iter().any(|o| o == "*");
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put(
        "access-control-allow-origin",
        if any { "*" } else { origin },
    );
    put(
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if !any {
        put("access-control-allow-credentials", "true");
    }
    if !rule.expose_headers.is_empty() {
        put(
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        put("access-control-max-age", &age.to_string());
    }
    put(
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
}

/// Answers preflights and decorates responses to cross-origin requests
/// (run by the gateway's one front middleware, `server::front_door`).
pub async fn handle(state: &CorsState, request: Request, next: Next) -> Response {
    let origin = text(request.headers(), header::ORIGIN);
    if request.method() == Method::OPTIONS {
        let bucket = state.0.bucket_of(&request);
        let (parts, _) = request.into_parts();
        return preflight(state, &parts.headers, bucket, origin).await;
    }
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    let bucket = state.0.bucket_of(&request);
    let method = request.method().as_str().to_owned();
    let mut response = next.run(request).await;
    if let Some(cors) = state.0.cors_of(bucket.as_deref()).await
        && let Some(rule) = matching_rule(&cors, &origin, &method, &[])
    {
        allow(response.headers_mut(), rule, &origin);
    }
    response
}

async fn preflight(
    state: &CorsState,
    headers: &HeaderMap,
    bucket: Option<String>,
    origin: Option<String>,
) -> Response {
    let (Some(origin), Some(method)) =
        (origin, text(headers, header::ACCESS_CONTROL_REQUEST_METHOD))
    else {
        return cors_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        );
    };
    let requested = text(headers, header::ACCESS_CONTROL_REQUEST_HEADERS).unwrap_or_default();
    let requested: Vec<&str> = requested
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let Some(cors) = state.0.cors_of(bucket.as_deref()).await else {
        return cors_error(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: CORS is not enabled for this bucket.",
        );
    };
    let Some(rule) = matching_rule(&cors, &origin, &method, &requested) else {
        return cors_error(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        );
    };
    let mut response = StatusCode::OK.into_response();
    allow(response.headers_mut(), rule, &origin);
    if !requested.is_empty()
        && let Ok(value) = HeaderValue::from_str(&requested.join(", "))
    {
        response
            .headers_mut()
            .insert("access-control-allow-headers", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn origins_match_with_one_wildcard_and_headers_case_blind() {
        let cors = Cors {
            rules: vec![
                rule(&["*suffix"], &["GET"], &[]),
                rule(&["start*end"], &["GET"], &[]),
                rule(&["prefix*"], &["GET"], &[]),
                rule(&["*.put"], &["PUT"], &["x-amz-*", "Content-Type"]),
            ],
        };
        let allowed = |origin: &str, method: &str, headers: &[&str]| {
            matching_rule(&cors, origin, method, headers).is_some()
        };
        for yes in [
            "foo.suffix",
            "startend",
            "start12end",
            "prefix",
            "prefix.suffix",
        ] {
            assert!(allowed(yes, "GET", &[]), "{yes}");
        }
        for no in ["foo.bar", "foo.suffix.get", "0start12end", "bla.prefix"] {
            assert!(!allowed(no, "GET", &[]), "{no}");
        }
        assert!(!allowed("foo.suffix", "PUT", &[]));
        assert!(allowed("a.put", "PUT", &["X-Amz-Meta-Foo", "content-type"]));
        assert!(!allowed("a.put", "PUT", &["authorization"]));
    }
}
