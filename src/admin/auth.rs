//! `admin-token`: who may read the admin page and its JSON API.
//!
//! Without a token configured everything is open (the listener is meant for loopback, a
//! port-forward or a NetworkPolicy). With one, `/`, `/api/topology`, `/topology` and
//! `POST /reload` need it, given either way:
//!
//! - `Authorization: Bearer <token>` (scripts, `curl -H`);
//! - the cookie `slotgate_admin_token`, which `GET /?token=<token>` (the page's login form)
//!   sets before redirecting to `/`, so the token leaves the address bar at once.
//!
//! Probes (`/healthz`, `/readyz`), `/metrics` and the page's static CSS and JS stay open:
//! kubelets and Prometheus carry no token, and none of them shows a secret. Tokens are
//! compared in constant time and never logged.

use hyper::Request;
use hyper::header::{AUTHORIZATION, COOKIE};

use crate::secret::Secret;

/// The cookie that carries the token after the login form.
pub const COOKIE_NAME: &str = "slotgate_admin_token";

/// What a request may do.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    /// No token configured, or the request carries it.
    Granted,
    /// `?token=` carried the right token: set the cookie and redirect to `/`.
    Login,
    /// A token is configured and the request lacks it (or `?token=` was wrong).
    Denied,
}

/// Checks `request` against the configured token.
pub fn check<B>(token: Option<&Secret>, request: &Request<B>) -> Access {
    let Some(token) = token else {
        return Access::Granted;
    };
    let expected = token.expose().as_bytes();
    let headers = request.headers();
    let bearer = headers
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer "))
        .any(|given| same(given.trim().as_bytes(), expected));
    let cookie = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == COOKIE_NAME && same(&percent_decode(value), expected));
    if bearer || cookie {
        return Access::Granted;
    }
    let query = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .any(|(name, value)| name == "token" && same(&percent_decode(value), expected));
    if query && request.uri().path() == "/" {
        Access::Login
    } else {
        Access::Denied
    }
}

/// The `Set-Cookie` value that logs a browser in (the token percent-encoded).
pub fn login_cookie(token: &Secret) -> String {
    let mut value = String::new();
    for byte in token.expose().bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            value.push(char::from(byte));
        } else {
            value.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict")
}

/// Equal bytes, in time that depends on the lengths only.
fn same(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

/// `%XX` and `+` (a form's space) decoded; malformed escapes kept as they are.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn bearer_cookie_and_login() {
        let token = Secret::new("s3cr et/+");
        let t = Some(&token);
        assert_eq!(check(None, &request("/", &[])), Access::Granted);
        assert_eq!(check(t, &request("/", &[])), Access::Denied);
        assert_eq!(
            check(
                t,
                &request("/api/topology", &[("authorization", "Bearer s3cr et/+")])
            ),
            Access::Granted
        );
        assert_eq!(
            check(t, &request("/", &[("authorization", "Bearer wrong")])),
            Access::Denied
        );
        let cookie = login_cookie(&token);
        let value = cookie.split(';').next().unwrap();
        assert_eq!(value, "slotgate_admin_token=s3cr%20et%2F%2B");
        assert_eq!(
            check(
                t,
                &request("/api/topology", &[("cookie", &format!("a=b; {value}"))])
            ),
            Access::Granted
        );
        assert_eq!(
            check(t, &request("/?token=s3cr+et%2F%2B", &[])),
            Access::Login
        );
        assert_eq!(check(t, &request("/?token=s3cr", &[])), Access::Denied);
        assert_eq!(
            check(t, &request("/api/topology?token=s3cr+et%2F%2B", &[])),
            Access::Denied,
            "?token= logs a browser in on / only"
        );
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
    }
}
