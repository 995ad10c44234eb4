//! The live topology page: `GET /` and its two static assets, compiled into the binary
//! (`include_str!`), so it works offline and behind `kubectl port-forward`. The script
//! polls `api/topology` (relative, so a path prefix in front works too) once a second and
//! redraws in place; nothing is fetched from anywhere else, which the
//! `Content-Security-Policy` header enforces.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION, SET_COOKIE};
use hyper::{Response, StatusCode};

const HTML: &str = include_str!("page/index.html");
const LOGIN: &str = include_str!("page/login.html");
pub const CSS: &str = include_str!("page/page.css");
pub const JS: &str = include_str!("page/page.js");

/// Same-origin only: no CDN, no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn page(
    status: StatusCode,
    body: &'static str,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The page itself.
pub fn index() -> Response<Full<Bytes>> {
    page(StatusCode::OK, HTML, "text/html; charset=utf-8")
}

/// A static asset of the page.
pub fn asset(body: &'static str, content_type: &'static str) -> Response<Full<Bytes>> {
    page(StatusCode::OK, body, content_type)
}

/// `401` with a form that asks for the admin token (it submits `GET /?token=`).
pub fn login_form() -> Response<Full<Bytes>> {
    page(StatusCode::UNAUTHORIZED, LOGIN, "text/html; charset=utf-8")
}

/// After a good `?token=`: the cookie, and back to `/` without the token in the address.
pub fn login_redirect(cookie: String) -> Response<Full<Bytes>> {
    let mut response = page(StatusCode::SEE_OTHER, "", "text/plain; charset=utf-8");
    let headers = response.headers_mut();
    headers.insert(LOCATION, HeaderValue::from_static("./"));
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        headers.insert(SET_COOKIE, cookie);
    }
    response
}
