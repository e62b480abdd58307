//! One resolver for everyone (DESIGN.md): configurable nameservers, so tests point it at
//! a DNS server on loopback.
