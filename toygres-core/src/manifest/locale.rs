//! The source cluster's default locale (format 2), so a restore initialises the new cluster —
//! and with it `template1` and `postgres` — with the same encoding, collation and provider.

use serde::{Deserialize, Serialize};

/// Encoding and locale of the source's `template1`, as `initdb` set them.
///
/// ```
/// use toygres_core::manifest::ClusterLocale;
/// let icu = ClusterLocale {
///     encoding: "UTF8".into(), lc_collate: "C".into(), lc_ctype: "C".into(),
///     provider: "icu".into(), locale: Some("de-DE".into()),
/// };
/// assert_eq!(icu.initdb_args(), ["--encoding=UTF8", "--lc-collate=C", "--lc-ctype=C",
///     "--locale-provider=icu", "--icu-locale=de-DE"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterLocale {
    /// Server encoding, e.g. `"UTF8"`.
    pub encoding: String,
    /// `LC_COLLATE`, e.g. `"C.UTF-8"`.
    pub lc_collate: String,
    /// `LC_CTYPE`.
    pub lc_ctype: String,
    /// Locale provider: `"libc"`, `"icu"` (PostgreSQL ≥ 15) or `"builtin"` (≥ 17).
    pub provider: String,
    /// The ICU or builtin locale, for those providers.
    pub locale: Option<String>,
}

impl ClusterLocale {
    /// The query that reads it from any PostgreSQL version (columns: encoding, collate, ctype,
    /// provider letter, provider locale). `to_jsonb` hides the columns that differ by version
    /// (`datlocprovider` from 15, `daticulocale` in 15–16, `datlocale` from 17).
    pub const QUERY: &'static str = "SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, \
         to_jsonb(d)->>'datlocprovider', coalesce(to_jsonb(d)->>'datlocale', to_jsonb(d)->>'daticulocale') \
         FROM pg_database d WHERE d.datname = 'template1'";

    /// Builds it from one row of [`ClusterLocale::QUERY`].
    pub fn from_row(
        encoding: String,
        lc_collate: String,
        lc_ctype: String,
        provider: Option<String>,
        locale: Option<String>,
    ) -> Self {
        let provider = match provider.as_deref() {
            Some("i") => "icu",
            Some("b") => "builtin",
            _ => "libc",
        };
        let locale = if provider == "libc" { None } else { locale };
        Self { encoding, lc_collate, lc_ctype, provider: provider.into(), locale }
    }

    /// The `initdb` arguments that reproduce it.
    pub fn initdb_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--encoding={}", self.encoding),
            format!("--lc-collate={}", self.lc_collate),
            format!("--lc-ctype={}", self.lc_ctype),
        ];
        if self.provider != "libc" {
            args.push(format!("--locale-provider={}", self.provider));
            if let Some(locale) = &self.locale {
                args.push(format!("--{}-locale={locale}", self.provider));
            }
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libc_needs_no_provider_arguments() {
        let c = ClusterLocale::from_row("UTF8".into(), "C.UTF-8".into(), "C.UTF-8".into(), Some("c".into()), None);
        assert_eq!(c.initdb_args(), ["--encoding=UTF8", "--lc-collate=C.UTF-8", "--lc-ctype=C.UTF-8"]);
        let old = ClusterLocale::from_row("LATIN1".into(), "C".into(), "C".into(), None, Some("x".into()));
        assert_eq!((old.provider.as_str(), old.locale), ("libc", None));
        let builtin =
            ClusterLocale::from_row("UTF8".into(), "C".into(), "C".into(), Some("b".into()), Some("C".into()));
        assert_eq!(builtin.initdb_args()[3..], ["--locale-provider=builtin", "--builtin-locale=C"]);
    }
}
