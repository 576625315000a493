//! What the LLM catalog and the llm lane read: the providers, the default model, how long
//! one reply may stream and how many may stream at once.

use std::time::Duration;

use super::error::{bad, missing, ConfigError, Secret};
use super::parse::{choice, p_dur, p_int, p_secret, p_text};
use super::read::Reader;
use super::table::Kind;
use super::url::p_secure_url;

#[derive(Clone, Debug)]
pub struct LlmConfig {
    /// Never empty: with no `LLM_PROVIDER_1_ID` it is the built-in echo provider.
    pub providers: Vec<ProviderConfig>,
    /// Always the id of one of `providers`.
    pub default_model: String,
    pub stream_timeout: Duration,
    /// Threads of the llm lane: one per concurrent stream.
    pub max_concurrent: usize,
}

#[derive(Clone, Debug)]
pub struct ProviderConfig {
    pub id: String,
    pub name: String,
    pub kind: ProviderKind,
    /// Without trailing `/`; `""` for echo.
    pub endpoint: String,
    /// `""` for a dify provider without `MODEL` (the Dify app picks the model).
    pub model: String,
    /// `None` for local models that need no key.
    pub api_key: Option<Secret>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Dify,
    Echo,
}

/// Spellings of `LLM_PROVIDER_<n>_TYPE`, used both to parse and to print.
const PROVIDER_KINDS: [(&str, ProviderKind); 4] = [
    ("openai", ProviderKind::OpenAi),
    ("anthropic", ProviderKind::Anthropic),
    ("dify", ProviderKind::Dify),
    ("echo", ProviderKind::Echo),
];

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        PROVIDER_KINDS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("", |(n, _)| n)
    }
}

impl LlmConfig {
    pub(super) fn read(r: &Reader) -> Result<LlmConfig, ConfigError> {
        let providers = providers(r)?;
        let default_model = match r.opt("DEFAULT_MODEL", p_text)? {
            None => providers[0].id.clone(),
            Some(m) if providers.iter().any(|p| p.id == m) => m,
            Some(m) => {
                let ids: Vec<&str> = providers.iter().map(|p| p.id.as_str()).collect();
                return Err(ConfigError {
                    expected: format!("one of the configured provider IDs: {}", ids.join(", ")),
                    ..bad("DEFAULT_MODEL", &m, "is not a configured provider ID")
                });
            }
        };
        Ok(LlmConfig {
            providers,
            default_model,
            stream_timeout: r.val("LLM_STREAM_TIMEOUT", p_dur)?,
            max_concurrent: r.val("LLM_MAX_CONCURRENT", p_int)?,
        })
    }
}

/// `LLM_PROVIDER_1_*`, `LLM_PROVIDER_2_*`, … up to the first missing ID; the echo provider
/// when there is none.
fn providers(r: &Reader) -> Result<Vec<ProviderConfig>, ConfigError> {
    let mut out: Vec<ProviderConfig> = Vec::new();
    for n in 1usize.. {
        let name = |field: &str| format!("LLM_PROVIDER_{n}_{field}");
        let Some(id) = r.opt(&name("ID"), p_provider_id)? else {
            break;
        };
        if out.iter().any(|p| p.id == id) {
            return Err(bad(
                &name("ID"),
                &id,
                "repeats the ID of an earlier provider",
            ));
        }
        let why = format!(" but {} is", name("ID"));
        let kind = r.need(&name("TYPE"), &why, |s, _| choice(s, &PROVIDER_KINDS))?;
        let echo = kind == ProviderKind::Echo;
        let endpoint = match r.opt(&name("ENDPOINT"), p_secure_url)? {
            Some(e) if !echo => e,
            None if !echo => {
                return Err(missing(
                    &name("ENDPOINT"),
                    &format!("{why} and TYPE is not echo"),
                ))
            }
            _ => String::new(),
        };
        let model = match (r.opt(&name("MODEL"), p_text)?, kind) {
            (Some(m), _) => m,
            (None, ProviderKind::Echo) => "echo".into(),
            (None, ProviderKind::Dify) => String::new(),
            (None, _) => {
                return Err(missing(
                    &name("MODEL"),
                    &format!(" but TYPE is {}", kind.as_str()),
                ))
            }
        };
        out.push(ProviderConfig {
            name: r.opt(&name("NAME"), p_text)?.unwrap_or_else(|| id.clone()),
            api_key: r.opt(&name("API_KEY"), p_secret)?,
            id,
            kind,
            endpoint,
            model,
        });
    }
    if out.is_empty() {
        out.push(ProviderConfig {
            id: "echo".into(),
            name: "Echo (offline)".into(),
            kind: ProviderKind::Echo,
            endpoint: String::new(),
            model: "echo".into(),
            api_key: None,
        });
    }
    Ok(out)
}

fn p_provider_id(s: &str, _: Kind) -> Result<String, String> {
    if s.len() > 64 || s.contains(|c: char| c.is_whitespace() || c == '"' || c == ',') {
        return Err("is longer than 64 bytes or contains spaces, quotes or commas".into());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::*;

    #[test]
    fn provider_rules() {
        let one = [("LLM_PROVIDER_1_ID", "a"), ("LLM_PROVIDER_1_TYPE", "echo")];
        fails(&one[..1], "LLM_PROVIDER_1_TYPE");
        let two = |pairs: &[(&'static str, &'static str)]| {
            [&one[..], &[("LLM_PROVIDER_2_ID", "b")], pairs].concat()
        };
        fails(
            &two(&[("LLM_PROVIDER_2_TYPE", "gemini")]),
            "LLM_PROVIDER_2_TYPE",
        );
        fails(
            &two(&[
                ("LLM_PROVIDER_2_TYPE", "openai"),
                ("LLM_PROVIDER_2_MODEL", "m"),
            ]),
            "LLM_PROVIDER_2_ENDPOINT",
        );
        let anthropic = [
            ("LLM_PROVIDER_2_TYPE", "anthropic"),
            ("LLM_PROVIDER_2_ENDPOINT", "https://x.ai"),
        ];
        assert!(fails(&two(&anthropic), "LLM_PROVIDER_2_MODEL").contains("TYPE is anthropic"));
        let dify = ok(&two(&[
            ("LLM_PROVIDER_2_TYPE", "DIFY"),
            ("LLM_PROVIDER_2_ENDPOINT", "https://d.ai/v1"),
        ]));
        let p = &dify.llm.providers[1];
        assert_eq!(
            (p.kind, p.model.as_str(), p.name.as_str()),
            (ProviderKind::Dify, "", "b")
        );
        let echo = &dify.llm.providers[0];
        assert_eq!(
            (echo.kind, echo.model.as_str(), echo.endpoint.as_str()),
            (ProviderKind::Echo, "echo", "")
        );
        assert_eq!(dify.llm.default_model, "a");
        fails(
            &two(&[("LLM_PROVIDER_2_ID", "a"), ("LLM_PROVIDER_2_TYPE", "echo")]),
            "LLM_PROVIDER_2_ID",
        );
        fails(
            &[
                ("LLM_PROVIDER_1_ID", "has space"),
                ("LLM_PROVIDER_1_TYPE", "echo"),
            ],
            "LLM_PROVIDER_1_ID",
        );

        // Numbering stops at the first gap; what lies beyond is reported, not used.
        let gap = ok(&[
            &one[..],
            &[("LLM_PROVIDER_3_ID", "c"), ("LLM_PROVIDER_3_TYPE", "echo")],
        ]
        .concat());
        assert_eq!(gap.llm.providers.len(), 1);
        assert_eq!(
            gap.ignored_legacy,
            ["LLM_PROVIDER_3_ID", "LLM_PROVIDER_3_TYPE"]
        );

        let chosen = two(&[("LLM_PROVIDER_2_TYPE", "echo"), ("DEFAULT_MODEL", "b")]);
        assert_eq!(ok(&chosen).llm.default_model, "b");
        let unknown = two(&[("LLM_PROVIDER_2_TYPE", "echo"), ("DEFAULT_MODEL", "gpt-5")]);
        let msg = fails(&unknown, "DEFAULT_MODEL");
        assert!(
            msg.contains("\"gpt-5\"") && msg.ends_with("IDs: a, b"),
            "{msg}"
        );
        fails(&[("DEFAULT_MODEL", "gpt-5")], "DEFAULT_MODEL");
        assert_eq!(ProviderKind::Anthropic.as_str(), "anthropic");
    }
}
