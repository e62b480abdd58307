//! What the server's EHLO reply offers (RFC 5321 §4.1.1.1): one keyword per line after
//! the first, parameters after it, case-insensitive.

use super::reply::Reply;

/// The extensions the client uses; everything else in the EHLO reply is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// RFC 3207.
    pub starttls: bool,
    /// RFC 2920.
    pub pipelining: bool,
    /// RFC 1870: `Some(limit)` when offered; a limit of 0 means none was announced.
    pub size: Option<u64>,
    /// RFC 6531.
    pub smtputf8: bool,
    /// RFC 6152.
    pub eight_bit_mime: bool,
    /// RFC 3030 (BDAT).
    pub chunking: bool,
    /// RFC 8689.
    pub requiretls: bool,
    /// RFC 2034.
    pub enhanced_status_codes: bool,
}

impl Capabilities {
    /// Reads a 250 reply to EHLO. The first line is the server's name, not a keyword.
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut capabilities = Capabilities::default();
        for line in reply.lines().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "STARTTLS" => capabilities.starttls = true,
                "PIPELINING" => capabilities.pipelining = true,
                // A missing or unreadable limit is no limit we can honour (§4 of RFC 1870
                // makes the parameter optional).
                "SIZE" => {
                    capabilities.size =
                        Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
                }
                "SMTPUTF8" => capabilities.smtputf8 = true,
                "8BITMIME" => capabilities.eight_bit_mime = true,
                "CHUNKING" => capabilities.chunking = true,
                "REQUIRETLS" => capabilities.requiretls = true,
                "ENHANCEDSTATUSCODES" => capabilities.enhanced_status_codes = true,
                _ => {}
            }
        }
        capabilities
    }

    /// Whether a message of `size` octets is over the announced limit.
    pub fn too_big(&self, size: usize) -> Option<u64> {
        self.size.filter(|&limit| limit > 0 && size as u64 > limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ehlo(lines: &[&str]) -> Capabilities {
        Capabilities::from_ehlo(&Reply {
            code: 250,
            enhanced: None,
            text: lines.join("\n"),
        })
    }

    #[test]
    fn keywords_are_case_insensitive_and_parameters_read() {
        let caps = ehlo(&[
            "mx.example.test hello",
            "pipelining",
            "SIZE 35882577",
            "8BITMIME",
            "SmtpUtf8",
            "CHUNKING",
            "STARTTLS",
            "ENHANCEDSTATUSCODES",
            "AUTH PLAIN LOGIN",
            "X-UNKNOWN foo",
        ]);
        assert_eq!(
            caps,
            Capabilities {
                starttls: true,
                pipelining: true,
                size: Some(35882577),
                smtputf8: true,
                eight_bit_mime: true,
                chunking: true,
                requiretls: false,
                enhanced_status_codes: true,
            }
        );
    }

    #[test]
    fn the_first_line_is_the_server_name_not_a_keyword() {
        assert!(!ehlo(&["STARTTLS"]).starttls);
        assert_eq!(ehlo(&["mx"]), Capabilities::default());
    }

    #[test]
    fn size_without_a_usable_limit_means_no_limit() {
        assert_eq!(ehlo(&["mx", "SIZE"]).size, Some(0));
        assert_eq!(ehlo(&["mx", "SIZE lots"]).size, Some(0));
        assert_eq!(ehlo(&["mx", "SIZE 99999999999999999999999"]).size, Some(0));
        assert_eq!(ehlo(&["mx", "SIZE 0"]).too_big(usize::MAX), None);
        assert_eq!(ehlo(&["mx"]).too_big(usize::MAX), None);
        assert_eq!(ehlo(&["mx", "SIZE 10"]).too_big(10), None);
        assert_eq!(ehlo(&["mx", "SIZE 10"]).too_big(11), Some(10));
    }

    #[test]
    fn requiretls_is_read() {
        assert!(ehlo(&["mx", "REQUIRETLS"]).requiretls);
    }
}
