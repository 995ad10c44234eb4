//! `CONFIG GET pattern ...` answered for slotgate itself.
//!
//! Clients and tools (redis-benchmark, monitoring agents) read settings with CONFIG GET;
//! the values that matter to them are slotgate's, not one node's. Parameters are slotgate's
//! config keys with their current values, plus the few Redis parameters tools commonly
//! ask for, answered as a cluster node would (`databases 1`, no persistence of our own).
//! Patterns follow Redis's glob rules (`*`, `?`, `[...]`, `\` escapes), case-insensitive.

use bytes::BytesMut;

use crate::config::Config;
use crate::resp::encode::{self, Protocol};

/// Every parameter slotgate reports, with its value.
fn parameters(config: &Config) -> Vec<(&'static str, String)> {
    let secs = |d: std::time::Duration| d.as_secs().to_string();
    let millis = |d: std::time::Duration| format!("{}ms", d.as_millis());
    vec![
        ("listen", config.listen.to_string()),
        ("announce", config.announce.to_string()),
        (
            "seeds",
            config
                .seeds
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("threads", config.threads.to_string()),
        ("timeout", secs(config.timeout)),
        ("maxclients", config.maxclients.to_string()),
        ("proto-max-bulk-len", config.proto_max_bulk_len.to_string()),
        (
            "client-query-buffer-limit",
            config.client_query_buffer_limit.to_string(),
        ),
        (
            "client-output-buffer-limit",
            output_limits(&config.client_output_buffer_limit),
        ),
        (
            "tls-port",
            config.tls.as_ref().map_or(0, |tls| tls.port).to_string(),
        ),
        ("max-request-args", config.max_request_args.to_string()),
        ("max-reply-depth", config.max_reply_depth.to_string()),
        (
            "max-inflight-per-client",
            config.max_inflight_per_client.to_string(),
        ),
        (
            "backend-connect-timeout",
            millis(config.backend_connect_timeout),
        ),
        (
            "backend-reply-timeout",
            millis(config.backend_reply_timeout),
        ),
        ("retry-deadline", millis(config.retry_deadline)),
        ("max-redirects", config.max_redirects.to_string()),
        (
            "topology-refresh-interval",
            millis(config.topology_refresh_interval),
        ),
        (
            "topology-refresh-min-interval",
            millis(config.topology_refresh_min_interval),
        ),
        // Redis parameters tools ask for, answered as the cluster behind slotgate behaves.
        ("databases", "1".to_owned()),
        ("cluster-enabled", "no".to_owned()),
        ("save", String::new()),
        ("appendonly", "no".to_owned()),
    ]
}

/// `client-output-buffer-limit` in redis.conf's form (hard and soft limits in bytes).
fn output_limits(limits: &crate::config::OutputBufferLimits) -> String {
    let class = |name: &str, l: &crate::config::OutputLimit| {
        format!("{name} {} {} {}", l.hard, l.soft, l.soft_seconds.as_secs())
    };
    format!(
        "{} {}",
        class("normal", &limits.normal),
        class("pubsub", &limits.pubsub)
    )
}

/// Appends the reply to `CONFIG GET patterns...`: a map of every matching parameter.
pub fn config_get(patterns: &[&[u8]], config: &Config, proto: Protocol, out: &mut BytesMut) {
    if patterns.is_empty() {
        return encode::error(
            out,
            "ERR wrong number of arguments for 'config|get' command",
        );
    }
    let matching: Vec<(&str, String)> = parameters(config)
        .into_iter()
        .filter(|(name, _)| patterns.iter().any(|p| glob_match(p, name.as_bytes())))
        .collect();
    encode::map_header(out, matching.len(), proto);
    for (name, value) in matching {
        encode::bulk(out, name.as_bytes());
        encode::bulk(out, value.as_bytes());
    }
}

/// Redis's `stringmatchlen`, case-insensitive, iterative over `*` with backtracking.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => class_match(&pattern[p..], text[t]),
            Some(b'\\') if p + 1 < pattern.len() => {
                (pattern[p + 1].eq_ignore_ascii_case(&text[t])).then_some(2)
            }
            Some(c) => c.eq_ignore_ascii_case(&text[t]).then_some(1),
            None => None,
        };
        match step {
            Some(width) => {
                p += width;
                t += 1;
            }
            None => match star {
                // Let the last `*` swallow one more character and try again.
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class at the start of `pattern` (`[abc]`, `[^a-z]`); returns
/// the class's length in the pattern when it matches.
fn class_match(pattern: &[u8], c: u8) -> Option<usize> {
    let mut i = 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < pattern.len() && pattern[i] != b']' {
        if pattern[i] == b'\\' && i + 1 < pattern.len() {
            matched |= pattern[i + 1].eq_ignore_ascii_case(&c);
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let (lo, hi) = (
                pattern[i].to_ascii_lowercase(),
                pattern[i + 2].to_ascii_lowercase(),
            );
            let (lo, hi) = (lo.min(hi), lo.max(hi));
            matched |= (lo..=hi).contains(&c.to_ascii_lowercase());
            i += 3;
        } else {
            matched |= pattern[i].eq_ignore_ascii_case(&c);
            i += 1;
        }
    }
    if i >= pattern.len() {
        // An unclosed class never matches, as in Redis.
        return None;
    }
    (matched != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_follow_redis_rules() {
        assert!(glob_match(b"*", b"maxclients"));
        assert!(glob_match(b"max*", b"maxclients"));
        assert!(glob_match(b"MAXCLIENTS", b"maxclients"));
        assert!(glob_match(b"*timeout", b"backend-reply-timeout"));
        assert!(glob_match(b"t?meout", b"timeout"));
        assert!(glob_match(b"[st]ave", b"save"));
        assert!(!glob_match(b"[^s]ave", b"save"));
        assert!(glob_match(b"[a-z]*", b"seeds"));
        assert!(!glob_match(b"max", b"maxclients"));
        assert!(!glob_match(b"[abc", b"a"));
        assert!(glob_match(b"a\\*", b"a*"));
        assert!(glob_match(b"*a*b*c*", b"xaybzc"));
    }

    #[test]
    fn output_limits_read_as_in_redis() {
        let config = Config::with_seeds(vec![crate::config::HostPort::new("10.0.0.1", 6379)]);
        let mut out = BytesMut::new();
        config_get(
            &[b"client-output-buffer-limit"],
            &config,
            Protocol::Resp2,
            &mut out,
        );
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("normal 0 0 0 pubsub 33554432 8388608 60"),
            "{text}"
        );
    }

    #[test]
    fn config_get_answers_matching_parameters() {
        let config = Config::with_seeds(vec!["127.0.0.1:7000".parse().unwrap()]);
        let mut out = BytesMut::new();
        config_get(
            &[b"maxclients", b"save"],
            &config,
            Protocol::Resp2,
            &mut out,
        );
        assert_eq!(
            &out[..],
            b"*4\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n$4\r\nsave\r\n$0\r\n\r\n"
        );
        let mut none = BytesMut::new();
        config_get(&[b"nope*"], &config, Protocol::Resp3, &mut none);
        assert_eq!(&none[..], b"%0\r\n");
    }
}
