//! LIST (RFC 9051 §6.3.9 with LIST-EXTENDED, RFC 5258; SPECIAL-USE, RFC 6154;
//! LIST-STATUS, RFC 5819) and the IMAP4rev1 LSUB.

use std::collections::BTreeMap;

use sealpost_store::{MAILBOX_DELIMITER, Mailbox, Store};

use super::mailbox::status_response;
use super::{Authenticated, store_failure};
use crate::command::{ListCommand, ListReturn, ListSelection, StatusItem};
use crate::mailbox_name;
use crate::response::{Completion, quoted, untagged};
use crate::selected::Enabled;

/// One name the hierarchy shows: a mailbox, or a level that exists only because
/// something below it does.
struct Node<'m> {
    mailbox: Option<&'m Mailbox>,
    has_children: bool,
    /// Some mailbox below it is subscribed (for RECURSIVEMATCH's CHILDINFO).
    subscribed_child: bool,
}

fn hierarchy(mailboxes: &[Mailbox]) -> BTreeMap<String, Node<'_>> {
    let mut nodes: BTreeMap<String, Node<'_>> = BTreeMap::new();
    for mailbox in mailboxes {
        nodes
            .entry(mailbox.name.clone())
            .or_insert(Node {
                mailbox: None,
                has_children: false,
                subscribed_child: false,
            })
            .mailbox = Some(mailbox);
        let mut parent = mailbox.name.as_str();
        while let Some((up, _)) = parent.rsplit_once(MAILBOX_DELIMITER) {
            let node = nodes.entry(up.to_string()).or_insert(Node {
                mailbox: None,
                has_children: false,
                subscribed_child: false,
            });
            node.has_children = true;
            node.subscribed_child |= mailbox.subscribed;
            parent = up;
        }
    }
    nodes
}

pub(super) async fn list(
    store: &dyn Store,
    auth: &Authenticated,
    command: &ListCommand,
    enabled: Enabled,
    out: &mut Vec<u8>,
) -> Completion {
    let Some(reference) = mailbox_name::decode(&command.reference, enabled.rev2) else {
        return Completion::bad("reference is not a valid name");
    };
    let mut patterns = Vec::new();
    for pattern in &command.patterns {
        let Some(pattern) = mailbox_name::decode(pattern, enabled.rev2) else {
            return Completion::bad("pattern is not a valid name");
        };
        patterns.push(pattern);
    }
    // RFC 9051 §6.3.9: an empty pattern asks for the delimiter and the root.
    if patterns.len() == 1 && patterns[0].is_empty() {
        untagged(out, "LIST (\\Noselect) \"/\" \"\"");
        return Completion::ok("LIST completed");
    }
    let patterns: Vec<String> = patterns
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| canonical_pattern(&reference, p))
        .collect();

    let subscribed_only = command.selection.contains(&ListSelection::Subscribed);
    let special_use_only = command.selection.contains(&ListSelection::SpecialUse);
    let recursive = command.selection.contains(&ListSelection::RecursiveMatch);
    let show_subscribed = subscribed_only || command.returns.contains(&ListReturn::Subscribed);
    let status_items: Option<&Vec<StatusItem>> = command.returns.iter().find_map(|r| match r {
        ListReturn::Status(items) => Some(items),
        _ => None,
    });

    let mailboxes = match store.mailboxes(auth.account.id).await {
        Ok(mailboxes) => mailboxes,
        Err(error) => return store_failure(&error),
    };
    for (name, node) in &hierarchy(&mailboxes) {
        if !patterns.iter().any(|p| matches(p, name)) {
            continue;
        }
        let selected = match node.mailbox {
            Some(m) => {
                (!subscribed_only || m.subscribed) && (!special_use_only || m.special_use.is_some())
            }
            None => false,
        };
        // RFC 5258 §3.5: with RECURSIVEMATCH a parent is listed for its subscribed
        // children, with CHILDINFO saying why.
        let child_info = recursive && subscribed_only && node.subscribed_child;
        let implied_parent = node.mailbox.is_none() && !subscribed_only && !special_use_only;
        if !(selected || child_info || implied_parent) {
            continue;
        }
        let mut attributes: Vec<&str> = Vec::new();
        match node.mailbox {
            None if enabled.rev2 => attributes.push("\\NonExistent"),
            None => attributes.push("\\Noselect"),
            Some(_) => {}
        }
        attributes.push(if node.has_children {
            "\\HasChildren"
        } else {
            "\\HasNoChildren"
        });
        if let Some(mailbox) = node.mailbox {
            if show_subscribed && mailbox.subscribed {
                attributes.push("\\Subscribed");
            }
            if let Some(special) = &mailbox.special_use {
                attributes.push(special);
            }
        }
        let mut line = format!("LIST ({}) \"/\" ", attributes.join(" "));
        quoted(&mut line, &mailbox_name::encode(name, enabled.rev2));
        if child_info && !selected {
            line.push_str(" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
        }
        untagged(out, &line);
        if let (Some(items), Some(mailbox), true) = (status_items, node.mailbox, selected) {
            match status_response(store, mailbox, items, enabled).await {
                Ok(status) => untagged(out, &status),
                Err(error) => return store_failure(&error),
            }
        }
    }
    Completion::ok("LIST completed")
}

/// IMAP4rev1 LSUB (RFC 3501 §6.3.9): subscribed mailboxes; a parent matched by `%`
/// that is not subscribed itself is shown `\Noselect`.
pub(super) async fn lsub(
    store: &dyn Store,
    auth: &Authenticated,
    reference: &[u8],
    pattern: &[u8],
    enabled: Enabled,
    out: &mut Vec<u8>,
) -> Completion {
    let (Some(reference), Some(pattern)) = (
        mailbox_name::decode(reference, enabled.rev2),
        mailbox_name::decode(pattern, enabled.rev2),
    ) else {
        return Completion::bad("not a valid name");
    };
    let pattern = canonical_pattern(&reference, &pattern);
    let mailboxes = match store.mailboxes(auth.account.id).await {
        Ok(mailboxes) => mailboxes,
        Err(error) => return store_failure(&error),
    };
    for (name, node) in &hierarchy(&mailboxes) {
        if !matches(&pattern, name) {
            continue;
        }
        let subscribed = node.mailbox.is_some_and(|m| m.subscribed);
        let attributes = if subscribed {
            "()"
        } else if node.subscribed_child && pattern.ends_with('%') {
            "(\\Noselect)"
        } else {
            continue;
        };
        let mut line = format!("LSUB {attributes} \"/\" ");
        quoted(&mut line, &mailbox_name::encode(name, enabled.rev2));
        untagged(out, &line);
    }
    Completion::ok("LSUB completed")
}

/// Reference and pattern as one pattern; `inbox` in any case means INBOX.
fn canonical_pattern(reference: &str, pattern: &str) -> String {
    let joined = format!("{reference}{pattern}");
    match joined.get(..5) {
        Some(head) if head.eq_ignore_ascii_case("INBOX") => {
            let rest = &joined[5..];
            if rest.is_empty() || rest.starts_with([MAILBOX_DELIMITER, '*', '%']) {
                return format!("INBOX{rest}");
            }
            joined
        }
        _ => joined,
    }
}

/// `*` matches anything, `%` anything but the hierarchy delimiter (RFC 9051 §6.3.9).
fn matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // reachable[j]: the pattern so far can match name[..j].
    let mut reachable = vec![false; name.len() + 1];
    reachable[0] = true;
    for &p in &pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            '*' | '%' => {
                for j in 0..=name.len() {
                    if reachable[j] {
                        next[j] = true;
                        let mut k = j;
                        while k < name.len() && (p == '*' || name[k] != MAILBOX_DELIMITER) {
                            k += 1;
                            next[k] = true;
                        }
                    }
                }
            }
            c => {
                for j in 0..name.len() {
                    if reachable[j] && name[j] == c {
                        next[j + 1] = true;
                    }
                }
            }
        }
        reachable = next;
    }
    reachable[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "a"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(!matches("a/%", "a/b/c"));
        assert!(matches("a*c", "a/b/c"));
        assert!(matches("INBOX", "INBOX"));
        assert!(!matches("INBOX", "INBOX/x"));
        assert_eq!(canonical_pattern("", "inbox"), "INBOX");
        assert_eq!(canonical_pattern("", "inboxes"), "inboxes");
        assert_eq!(canonical_pattern("Archive/", "%"), "Archive/%");
    }
}
