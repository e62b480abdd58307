//! Message flags as every backend stores them, so that `\SEEN` from one client and
//! `\Seen` from another are one flag and a STORE that changes nothing changes no MODSEQ.

use std::cmp::Ordering;

use crate::{FlagOperation, Result, StoreError};

/// RFC 9051 §2.3.2, spelt as the RFC spells them. `\Recent` is gone from IMAP4rev2.
const SYSTEM_FLAGS: &[&str] = &["\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen"];

/// The flag POP3's DELE and IMAP's EXPUNGE act on.
pub(crate) const DELETED: &str = "\\Deleted";

/// A message's flags: no two equal ignoring case (flag names are case-insensitive, RFC
/// 9051 §9), system flags in their canonical spelling, keywords as first written, sorted
/// so that equal sets are stored as equal strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FlagSet(Vec<String>);

impl FlagSet {
    /// Flags a client sent. Each must be a system flag or a keyword atom (RFC 9051 §9,
    /// `flag`); `\`-prefixed names the RFC does not define are refused, since a server
    /// must not announce flag extensions nobody defined.
    pub(crate) fn parse<S: AsRef<str>>(flags: &[S]) -> Result<Self> {
        let mut set = Self::default();
        for flag in flags {
            set.insert(canonical(flag.as_ref())?);
        }
        Ok(set)
    }

    /// Flags as [`FlagSet::stored`] wrote them.
    pub(crate) fn from_stored(stored: &str) -> Self {
        Self(stored.split_whitespace().map(str::to_string).collect())
    }

    /// One space-separated string: flags are atoms, so a space never occurs inside one.
    pub(crate) fn stored(&self) -> String {
        self.0.join(" ")
    }

    pub(crate) fn contains(&self, flag: &str) -> bool {
        self.position(flag).is_ok()
    }

    /// The flags after a STORE of `flags` with `operation`. A keyword already present in
    /// another case keeps its spelling.
    pub(crate) fn apply(&self, operation: FlagOperation, flags: &FlagSet) -> FlagSet {
        match operation {
            FlagOperation::Add => {
                let mut result = self.clone();
                for flag in &flags.0 {
                    result.insert(flag.clone());
                }
                result
            }
            FlagOperation::Remove => FlagSet(
                self.0
                    .iter()
                    .filter(|flag| !flags.contains(flag))
                    .cloned()
                    .collect(),
            ),
            FlagOperation::Replace if self.same_flags(flags) => self.clone(),
            FlagOperation::Replace => flags.clone(),
        }
    }

    /// Equal as sets of flag names, whatever the case of the keywords.
    pub(crate) fn same_flags(&self, other: &FlagSet) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        self.0
    }

    fn insert(&mut self, flag: String) {
        if let Err(at) = self.position(&flag) {
            self.0.insert(at, flag);
        }
    }

    fn position(&self, flag: &str) -> std::result::Result<usize, usize> {
        self.0
            .binary_search_by(|probe| compare_ignoring_case(probe, flag))
    }
}

fn compare_ignoring_case(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

fn canonical(flag: &str) -> Result<String> {
    let invalid = || StoreError::Invalid {
        what: "flag",
        value: flag.to_string(),
    };
    match flag.strip_prefix('\\') {
        Some(_) => SYSTEM_FLAGS
            .iter()
            .find(|system| system.eq_ignore_ascii_case(flag))
            .map(|system| system.to_string())
            .ok_or_else(invalid),
        None if !flag.is_empty() && flag.bytes().all(is_atom_char) => Ok(flag.to_string()),
        None => Err(invalid()),
    }
}

/// RFC 9051 §9: `ATOM-CHAR = <any CHAR except atom-specials>`.
fn is_atom_char(c: u8) -> bool {
    c.is_ascii_graphic() && !b"(){%*\"\\]".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(flags: &[&str]) -> FlagSet {
        FlagSet::parse(flags).unwrap()
    }

    #[test]
    fn system_flags_take_their_canonical_spelling_and_duplicates_collapse() {
        let flags = set(&["\\SEEN", "$Label1", "\\seen", "$label1", "\\deleted"]);
        assert_eq!(flags.stored(), "$Label1 \\Deleted \\Seen");
        assert!(flags.contains("\\Seen"));
        assert!(flags.contains("$LABEL1"));
        assert_eq!(FlagSet::from_stored(&flags.stored()), flags);
    }

    #[test]
    fn flags_must_be_system_flags_or_atoms() {
        for bad in [
            "",
            "\\Recent",
            "\\Foo",
            "two words",
            "a(b",
            "quote\"",
            "star*",
            "br]",
            "tab\t",
            "non-ascii-é",
        ] {
            assert!(
                matches!(
                    FlagSet::parse(&[bad]),
                    Err(StoreError::Invalid { what: "flag", .. })
                ),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn add_remove_and_replace_ignore_case() {
        let flags = set(&["\\Seen", "$Work"]);
        assert!(
            flags
                .apply(FlagOperation::Add, &set(&["$work", "\\seen"]))
                .same_flags(&flags)
        );
        assert_eq!(
            flags
                .apply(FlagOperation::Add, &set(&["\\Flagged"]))
                .stored(),
            "$Work \\Flagged \\Seen"
        );
        assert_eq!(
            flags
                .apply(FlagOperation::Remove, &set(&["$WORK"]))
                .stored(),
            "\\Seen"
        );
        assert_eq!(
            flags.apply(FlagOperation::Replace, &set(&["$WORK", "\\SEEN"])),
            flags,
            "replacing with the same set keeps the stored spelling"
        );
        assert_eq!(
            flags.apply(FlagOperation::Replace, &set(&[])),
            FlagSet::default()
        );
    }
}
