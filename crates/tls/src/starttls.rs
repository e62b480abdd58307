//! The one STARTTLS upgrade (SMTP STARTTLS, IMAP STARTTLS, POP3 STLS all come here).

use tracing::warn;

use crate::acceptor::TlsAcceptor;
use crate::error::TlsError;
use crate::stream::MailStream;

/// Turns a plaintext stream into TLS after the session has answered the STARTTLS
/// command with its "go ahead" reply.
///
/// Bytes the client sent after the STARTTLS command but before the handshake were
/// written in plaintext and could have been injected by anyone on the path
/// (CVE-2011-0411): they are thrown away, never carried into the TLS session. The caller
/// must also forget everything learned before TLS (RFC 3207 §4.2); returning a fresh
/// stream is half of that, the session's state reset is the other half.
pub async fn starttls(
    mut stream: MailStream,
    acceptor: &TlsAcceptor,
) -> Result<MailStream, TlsError> {
    if stream.is_tls() {
        return Err(TlsError::AlreadyTls);
    }
    let pending = stream.buffered().len();
    if pending > 0 {
        warn!(
            peer = %stream.peer(),
            bytes = pending,
            "discarding plaintext pipelined after STARTTLS (CVE-2011-0411)"
        );
        stream.consume(pending);
    }
    acceptor.accept(stream).await
}
