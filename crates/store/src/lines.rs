//! Short lists kept in one text column: one item per line, fields separated by tabs.
//! Used where the items are never queried one by one (auth results of a DMARC
//! evaluation, the policy strings of a TLS session), so a child table would only cost.

/// Control characters inside a field (which no domain, selector, result, URI or policy
/// line has) become spaces so they cannot split it.
pub(super) fn encode<'a, const N: usize>(items: impl Iterator<Item = [&'a str; N]>) -> String {
    let clean = |field: &str| field.replace(|c: char| c.is_control(), " ");
    items
        .map(|fields| fields.map(clean).join("\t"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The items `encode` wrote; empty lines (an empty one-field item) are not items.
pub(super) fn decode(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.split('\t').map(str::to_string).collect())
        .collect()
}
