//! Reading variables through the table: defaults, the placeholder and control-character
//! checks, and the record of which names were read.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use super::error::{bad, missing, ConfigError};
use super::table::{spec, Dflt, Kind};

/// Reads variables through the table and remembers which names were read.
pub(super) struct Reader<'a> {
    pub(super) vars: &'a HashMap<String, String>,
    pub(super) used: RefCell<BTreeSet<String>>,
}

impl Reader<'_> {
    /// The parsed value, the table default when unset/empty, or `None` when neither.
    pub(super) fn opt<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str, Kind) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(var) = spec(name) else {
            return Err(ConfigError {
                variable: name.to_owned(),
                problem: "is read but has no row in the settings table".into(),
                expected: "a fix in config/table.rs".into(),
            });
        };
        self.used.borrow_mut().insert(name.to_owned());
        let verbatim = matches!(var.kind, Kind::Key(_));
        let set = self
            .vars
            .get(name)
            .map(|v| if verbatim { v.as_str() } else { v.trim() });
        let value = match (set, var.default) {
            (Some(v), _) if !v.is_empty() || matches!(var.kind, Kind::Cidrs) => v,
            (_, Dflt::Lit(d)) => d,
            _ => return Ok(None),
        };
        if value.to_ascii_lowercase().contains("replace_with") {
            return Err(bad(name, value, "is an unfilled REPLACE_WITH… placeholder"));
        }
        if !verbatim && value.chars().any(char::is_control) {
            return Err(bad(name, value, "contains control characters"));
        }
        parse(value, var.kind)
            .map(Some)
            .map_err(|p| bad(name, value, p))
    }

    pub(super) fn need<T>(
        &self,
        name: &str,
        why: &str,
        parse: impl FnOnce(&str, Kind) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.opt(name, parse)?.ok_or_else(|| missing(name, why))
    }

    pub(super) fn val<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str, Kind) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.need(name, "", parse)
    }

    /// Two variables that only make sense together: both or neither.
    pub(super) fn pair<A, B>(
        &self,
        (na, pa): (&str, impl FnOnce(&str, Kind) -> Result<A, String>),
        (nb, pb): (&str, impl FnOnce(&str, Kind) -> Result<B, String>),
    ) -> Result<Option<(A, B)>, ConfigError> {
        match (self.opt(na, pa)?, self.opt(nb, pb)?) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(missing(nb, &format!(" but {na} is"))),
            (None, Some(_)) => Err(missing(na, &format!(" but {nb} is"))),
        }
    }
}
