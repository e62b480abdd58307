//! Short lists kept in one text column: one item per line, fields separated by tabs.
//! Used where the items are never queried one by one (auth results of a DMARC
//! evaluation, the policy strings of a TLS session), so a child table would only cost.
//! Both backends store them so.

use crate::{DkimAuthResult, SpfAuthResult};

/// Control characters inside a field (which no domain, selector, result, URI or policy
/// line has) become spaces so they cannot split it.
pub(crate) fn encode<'a, const N: usize>(items: impl Iterator<Item = [&'a str; N]>) -> String {
    let clean = |field: &str| field.replace(|c: char| c.is_control(), " ");
    items
        .map(|fields| fields.map(clean).join("\t"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The items `encode` wrote; empty lines (an empty one-field item) are not items.
pub(crate) fn decode(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.split('\t').map(str::to_string).collect())
        .collect()
}

pub(crate) fn encode_dkim(results: &[DkimAuthResult]) -> String {
    encode(
        results
            .iter()
            .map(|r| [r.domain.as_str(), r.selector.as_str(), r.result.as_str()]),
    )
}

pub(crate) fn decode_dkim(text: &str) -> Vec<DkimAuthResult> {
    decode(text)
        .into_iter()
        .filter_map(|fields| match <[String; 3]>::try_from(fields) {
            Ok([domain, selector, result]) => Some(DkimAuthResult {
                domain,
                selector,
                result,
            }),
            Err(_) => None,
        })
        .collect()
}

pub(crate) fn encode_spf(results: &[SpfAuthResult]) -> String {
    encode(
        results
            .iter()
            .map(|r| [r.domain.as_str(), r.scope.as_str(), r.result.as_str()]),
    )
}

pub(crate) fn decode_spf(text: &str) -> Vec<SpfAuthResult> {
    decode(text)
        .into_iter()
        .filter_map(|fields| match <[String; 3]>::try_from(fields) {
            Ok([domain, scope, result]) => Some(SpfAuthResult {
                domain,
                scope,
                result,
            }),
            Err(_) => None,
        })
        .collect()
}
