//! How names are made canonical before they are stored or looked up, so that every
//! backend and every protocol agrees that `Alice@Example.TEST` and `alice@example.test`
//! are one account.

use crate::{MAILBOX_DELIMITER, Result, StoreError};

/// An account address as stored: trimmed, lower-case, with its domain split off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountAddress {
    pub(crate) address: String,
    pub(crate) domain: String,
}

/// Accepts `local@domain` with exactly one `@`, a non-empty local part and a valid
/// domain (see [`domain`]).
pub(crate) fn account_address(raw: &str) -> Result<AccountAddress> {
    let address = raw.trim().to_lowercase();
    let domain = match address.split_once('@') {
        Some((local, domain)) if !local.is_empty() && is_valid_domain(domain) => domain.to_string(),
        _ => {
            return Err(StoreError::Invalid {
                what: "address",
                value: raw.to_string(),
            });
        }
    };
    Ok(AccountAddress { address, domain })
}

/// A local domain as stored: trimmed and lower-case, non-empty, with no `@` and no
/// whitespace inside.
pub(crate) fn domain(raw: &str) -> Result<String> {
    let domain = raw.trim().to_lowercase();
    if is_valid_domain(&domain) {
        Ok(domain)
    } else {
        Err(StoreError::Invalid {
            what: "domain",
            value: raw.to_string(),
        })
    }
}

fn is_valid_domain(domain: &str) -> bool {
    !domain.is_empty() && !domain.contains(|c: char| c == '@' || c.is_whitespace())
}

/// RFC 9051 §5.1: the name INBOX is case-insensitive, every other mailbox name is
/// case-sensitive, so only INBOX is folded.
pub(crate) fn mailbox(name: &str) -> &str {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX"
    } else {
        name
    }
}

/// A name a mailbox may be created or renamed to: as [`mailbox`] folds it, not empty,
/// without control characters and without an empty level in the hierarchy (`a//b`,
/// `/a`, `a/`). RFC 9051 §6.3.4 has the client's trailing delimiter stripped before
/// this is asked; the protocol layer does that.
pub(crate) fn new_mailbox(raw: &str) -> Result<String> {
    let valid = !raw.contains(char::is_control)
        && raw.split(MAILBOX_DELIMITER).all(|level| !level.is_empty());
    if valid {
        Ok(mailbox(raw).to_string())
    } else {
        Err(StoreError::Invalid {
            what: "mailbox name",
            value: raw.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        let parsed = account_address("  Alice@Example.TEST\n").unwrap();
        assert_eq!(parsed.address, "alice@example.test");
        assert_eq!(parsed.domain, "example.test");
    }

    #[test]
    fn addresses_need_one_at_between_non_empty_parts() {
        for raw in [
            "",
            "alice",
            "@example.test",
            "alice@",
            "a@b@c",
            "a@exa mple.test",
        ] {
            assert!(
                matches!(
                    account_address(raw),
                    Err(StoreError::Invalid {
                        what: "address",
                        ..
                    })
                ),
                "{raw:?} was accepted"
            );
        }
    }

    #[test]
    fn domains_are_lower_cased_and_must_be_plain_names() {
        assert_eq!(domain(" Example.TEST ").unwrap(), "example.test");
        for raw in ["", "  ", "a@example.test", "exa mple.test"] {
            assert!(domain(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn only_inbox_is_case_insensitive() {
        assert_eq!(mailbox("inbox"), "INBOX");
        assert_eq!(mailbox("InBoX"), "INBOX");
        assert_eq!(mailbox("sent"), "sent");
    }

    #[test]
    fn new_mailbox_names_may_nest_but_not_be_empty_or_hold_control_characters() {
        assert_eq!(new_mailbox("inbox").unwrap(), "INBOX");
        assert_eq!(new_mailbox("a/b/c").unwrap(), "a/b/c");
        assert_eq!(new_mailbox("Entwürfe %*").unwrap(), "Entwürfe %*");
        for raw in ["", "a\nb", "tab\there", "nul\0", "/a", "a/", "a//b", "/"] {
            assert!(
                matches!(
                    new_mailbox(raw),
                    Err(StoreError::Invalid {
                        what: "mailbox name",
                        ..
                    })
                ),
                "{raw:?} was accepted"
            );
        }
    }
}
