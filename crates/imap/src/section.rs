//! A body section as FETCH names it (RFC 9051 §6.4.5): `BODY[1.2.HEADER.FIELDS (To)]<0.100>`
//! is part `[1, 2]`, text `HeaderFields`, partial `(0, 100)`.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    /// MIME part numbers, 1-based; empty means the whole message.
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    /// `HEADER.FIELDS (..)`, or `HEADER.FIELDS.NOT (..)` when `not`.
    HeaderFields {
        not: bool,
        fields: Vec<String>,
    },
    Text,
    /// The MIME header of a part (only with a part number).
    Mime,
}
