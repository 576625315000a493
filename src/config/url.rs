//! URLs and browser origins: endpoints that keys and chats travel to, and the origins
//! CORS and the WebSocket upgrade compare against.

use std::net::IpAddr;

use super::parse::list;
use super::table::Kind;

pub(super) fn p_secure_url(s: &str, _: Kind) -> Result<String, String> {
    web_url(s, true)
}

/// An http(s) URL without trailing `/`. With `secure`, plain http is allowed only to hosts
/// that cannot be on the public internet, since keys and chats travel in it.
pub(super) fn web_url(s: &str, secure: bool) -> Result<String, String> {
    let s = s.trim_end_matches('/');
    let url = split_url(s)?;
    match url.scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(s.to_owned()),
        "http" if !secure || is_local_host(url.host) => Ok(s.to_owned()),
        "http" => Err(
            "uses plain http:// to a public host, so keys and chats would travel unencrypted"
                .into(),
        ),
        _ => Err("is not an http:// or https:// URL".into()),
    }
}

struct Url<'a> {
    scheme: &'a str,
    host: &'a str,
    path: &'a str,
}

/// `scheme://host[:port][/path]`; user info, query and fragment are refused.
fn split_url(s: &str) -> Result<Url<'_>, String> {
    let (scheme, rest) = s.split_once("://").ok_or("is not a URL (scheme://host…)")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err("has an invalid scheme".into());
    }
    if rest.contains(['?', '#']) {
        return Err("has a query or fragment".into());
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err("contains user info (user@); credentials have their own variables".into());
    }
    // `port` is "" or ":<port>".
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').ok_or("has an unclosed [ in the host")?,
        None => authority.split_at(authority.find(':').unwrap_or(authority.len())),
    };
    let port_ok = port.is_empty()
        || (port.strip_prefix(':').and_then(|p| p.parse::<u16>().ok())).is_some_and(|p| p > 0);
    if !port_ok {
        return Err("has an invalid port".into());
    }
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c))
    {
        return Err("has an invalid host".into());
    }
    Ok(Url { scheme, host, path })
}

/// Loopback or private IPs, dotless names (a container or compose service) and names only
/// resolvable inside a cluster or LAN.
fn is_local_host(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match ip.to_canonical() {
            IpAddr::V4(a) => a.is_loopback() || a.is_private(),
            IpAddr::V6(a) => a.is_loopback() || a.is_unique_local(),
        };
    }
    let host = host.to_ascii_lowercase();
    !host.contains('.')
        || [".local", ".internal", ".svc", ".cluster.local"]
            .iter()
            .any(|s| host.ends_with(s))
}

/// Origins as browsers send them. A single trailing `/` is dropped (a common copy-paste
/// that could never match); letters are lower-cased, as browsers send them.
pub(super) fn p_origins(s: &str, _: Kind) -> Result<Option<Vec<String>>, String> {
    let origins = list(s, |e| {
        if e == "*" {
            return Err(
                "is a wildcard; list the origins (browsers refuse * with credentials)".into(),
            );
        }
        let origin = e.strip_suffix('/').unwrap_or(e);
        if !split_url(origin)?.path.is_empty() {
            return Err("has a path".into());
        }
        Ok(origin.to_ascii_lowercase())
    })?;
    Ok(Some(origins).filter(|o| !o.is_empty()))
}

#[cfg(test)]
mod tests {
    use crate::config::testing::*;

    #[test]
    fn origins() {
        let c = ok(&[(
            "CORS_ALLOWED_ORIGINS",
            " https://a.example.org , https://B.example.org:8443/ ,",
        )]);
        let want = ["https://a.example.org", "https://b.example.org:8443"];
        assert_eq!(c.access.cors_allowed_origins.unwrap(), want);
        assert!(ok(&[("WS_ALLOWED_ORIGINS", "")])
            .access
            .ws_allowed_origins
            .is_none());
        for name in ["CORS_ALLOWED_ORIGINS", "WS_ALLOWED_ORIGINS"] {
            let msg = fails(&[(name, "https://REPLACE_WITH_YOUR_DOMAIN")], name);
            assert!(msg.contains("placeholder"), "{msg}");
            for bad in [
                "https://x.org/app",
                "*",
                "x.org",
                "https://x.org?a=1",
                "https://:80",
            ] {
                fails(&[(name, bad)], name);
            }
        }
        fails(
            &[("ADMIN_PANEL_URL", "https://replace_with.panel")],
            "ADMIN_PANEL_URL",
        );
    }

    #[test]
    fn provider_endpoints() {
        let openai = |endpoint: &'static str| {
            vec![
                ("LLM_PROVIDER_1_ID", "gpt"),
                ("LLM_PROVIDER_1_TYPE", "openai"),
                ("LLM_PROVIDER_1_MODEL", "gpt-4o"),
                ("LLM_PROVIDER_1_ENDPOINT", endpoint),
            ]
        };
        for good in [
            "https://api.openai.com/v1",
            "http://127.0.0.1:11434/v1",
            "http://[::1]:8000",
            "http://10.1.2.3",
            "http://192.168.1.5:8080",
            "http://172.20.0.3",
            "http://ollama:11434",
            "http://localhost:8000/v1",
            "http://llm.internal",
            "http://vllm.ai.svc:8000",
            "http://vllm.ai.svc.cluster.local",
            "http://box.local",
            "http://[fd00::1]:80",
            "http://[::ffff:10.0.0.1]",
        ] {
            let c = ok(&openai(good));
            assert_eq!(c.llm.providers[0].endpoint, good, "{good}");
            assert_eq!(c.llm.default_model, "gpt");
        }
        assert_eq!(
            ok(&openai("https://api.openai.com/v1/")).llm.providers[0].endpoint,
            "https://api.openai.com/v1"
        );
        for bad in [
            "http://api.openai.com",
            "http://8.8.8.8",
            "http://172.32.0.1",
            "http://[2001:db8::1]",
            "ftp://ollama",
            "api.openai.com",
            "https://",
            "https://user:pw@host",
            "https://host/v1?q=1",
            "https://host:0",
            "https://host:99999",
        ] {
            fails(&openai(bad), "LLM_PROVIDER_1_ENDPOINT");
        }
    }
}
