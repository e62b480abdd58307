//! The plaintext side of STARTTLS ports: is TLS offered, is authentication offered or
//! accepted before it, and does the server carry plaintext pipelined after STARTTLS into
//! the TLS session (CVE-2011-0411)?

use std::time::Duration;

use crate::ProbeError;
use crate::dialogue::{
    Capabilities, Conversation, LoginAttempt, answers_injected_command, injected_command,
    quit_command, starttls_accepted, starttls_command,
};
use crate::handshake::{Offer, handshake_on};
use crate::link::Link;
use crate::target::Protocol;

/// What one plaintext session showed.
#[derive(Debug, Clone)]
pub(crate) struct PlaintextSession {
    pub capabilities: Capabilities,
    pub login: Option<LoginAttempt>,
}

/// Greeting, capabilities, and (where users log in, or AUTH is offered anyway) a login
/// with fake credentials.
pub(crate) async fn plaintext_session(link: &Link) -> Result<PlaintextSession, ProbeError> {
    let stream = link.tcp().await?;
    let mut conversation = Conversation::new(stream, link.endpoint.service.protocol());
    conversation.greeting().await?;
    let capabilities = conversation.capabilities().await?;
    let login = if link.endpoint.service.carries_logins() || capabilities.offers_authentication() {
        Some(conversation.try_plaintext_login(&capabilities).await?)
    } else {
        None
    };
    conversation.quit().await;
    Ok(PlaintextSession {
        capabilities,
        login,
    })
}

/// Authentication a client is invited to use before TLS.
pub(crate) fn auth_offered(protocol: Protocol, capabilities: &Capabilities) -> Vec<String> {
    let mut offered = capabilities.auth_mechanisms.clone();
    if capabilities.password_login {
        offered.push(match protocol {
            Protocol::Imap => "LOGIN".into(),
            Protocol::Pop3 | Protocol::Smtp => "USER".into(),
        });
    }
    offered
}

/// How long to wait for the server to answer the smuggled command, after QUIT. A server
/// that closes after QUIT ends the wait at once; this bounds one that lingers.
const INJECTION_WAIT: Duration = Duration::from_secs(2);

/// Sends STARTTLS and a NOOP in one write, completes the handshake, sends QUIT inside
/// TLS, and reads the rest: any answer besides QUIT's means the NOOP crossed into TLS.
pub(crate) async fn command_injection(link: &Link) -> Result<bool, ProbeError> {
    let protocol = link.endpoint.service.protocol();
    let stream = link.tcp().await?;
    let mut conversation = Conversation::new(stream, protocol);
    conversation.greeting().await?;
    if protocol == Protocol::Smtp && !conversation.capabilities().await?.starttls {
        return Err(ProbeError::NoStartTls);
    }
    let mut smuggled = starttls_command(protocol).to_vec();
    smuggled.extend_from_slice(injected_command(protocol));
    conversation.send(&smuggled).await?;
    let reply = conversation.starttls_reply().await?;
    if !starttls_accepted(protocol, &reply) {
        return Err(ProbeError::StartTlsRefused(reply.summary()));
    }
    // Whatever followed the reply in plaintext is not TLS; the client side of a correct
    // STARTTLS discards it (RFC 3207 §4.2 keeps nothing from before).
    let (tcp, _) = conversation.into_parts();
    let (tls, _) = handshake_on(link, tcp, Offer::everything()).await?;
    let mut inside = Conversation::new(tls, protocol);
    inside.send(quit_command(protocol)).await?;
    let answered = inside.read_to_end(INJECTION_WAIT).await;
    Ok(answers_injected_command(protocol, &answered))
}
