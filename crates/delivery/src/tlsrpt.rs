//! TLS-RPT (RFC 8460): session outcomes kept per policy domain, and the daily report.
