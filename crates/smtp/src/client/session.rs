//! The async session with one remote server: connect, greeting, EHLO, STARTTLS, then
//! any number of transactions, then QUIT.
//!
//! A session that hits an I/O error, a timeout, a malformed reply or a TLS failure drops
//! its connection at once and refuses further use: a reply that arrives late could
//! otherwise be read as the answer to the next command, and a late "250" taken for the
//! acceptance of a message that was never delivered.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use sealpost_tls::{MailStream, starttls_client};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::capabilities::Capabilities;
use super::data::{bdat_last, dot_stuffed};
use super::envelope::{ClientEnvelope, EnvelopeCommands, Transaction};
use super::error::{ClientError, Stage};
use super::reply::{MAX_REPLY_LINE, Reply, ReplyReader};

#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The name we give in EHLO/HELO (our hostname).
    pub helo: String,
    /// How long the TCP connection may take to be established. RFC 5321 sets none;
    /// without one a blackholed MX address would hold a connection slot for the whole
    /// command timeout before the next MX is tried.
    pub connect_timeout: Duration,
    /// How long the server may take to answer each command: the greeting, EHLO,
    /// STARTTLS (and the handshake), MAIL, RCPT, DATA, RSET, QUIT.
    pub command_timeout: Duration,
    /// How long sending the message and the server's verdict on it may take.
    pub data_timeout: Duration,
}

impl ClientSettings {
    /// RFC 5321 §4.5.3.2's timeouts: 5 minutes per command, 10 for the end of data;
    /// 30 seconds to connect (Postfix's `smtp_connect_timeout`).
    pub fn new(helo: impl Into<String>) -> Self {
        Self {
            helo: helo.into(),
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
        }
    }
}

/// What the STARTTLS handshake negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDetails {
    /// e.g. `TLSv1.3`
    pub version: String,
    /// e.g. `TLS13_AES_128_GCM_SHA256`
    pub cipher: String,
    /// The server's chain, leaf first, as it sent it.
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

pub struct ClientSession {
    /// `None` once the connection is gone (after an error that leaves it unusable).
    stream: Option<MailStream>,
    peer: SocketAddr,
    settings: ClientSettings,
    greeting: Reply,
    capabilities: Capabilities,
    tls: Option<TlsDetails>,
    /// MAIL was accepted and the transaction did not end: RSET before the next MAIL.
    transaction_open: bool,
    /// The last `send` began writing the message itself.
    message_started: bool,
}

impl ClientSession {
    /// Connects, reads the 220 greeting and says EHLO (HELO if EHLO is refused with 5xx).
    pub async fn connect(addr: SocketAddr, settings: &ClientSettings) -> Result<Self, ClientError> {
        let tcp = within(settings.connect_timeout, Stage::Connect, async {
            TcpStream::connect(addr)
                .await
                .map_err(|e| ClientError::lost(Stage::Connect, e))
        })
        .await?;
        // Commands are written whole; there is nothing to gain from Nagle's delay.
        let _ = tcp.set_nodelay(true);
        let mut stream = MailStream::plain(tcp, addr);
        let greeting = within(
            settings.command_timeout,
            Stage::Greeting,
            read_reply(&mut stream, Stage::Greeting),
        )
        .await?;
        if greeting.code != 220 {
            return Err(ClientError::Rejected {
                stage: Stage::Greeting,
                reply: greeting,
            });
        }
        let mut session = Self {
            stream: Some(stream),
            peer: addr,
            settings: settings.clone(),
            greeting,
            capabilities: Capabilities::default(),
            tls: None,
            transaction_open: false,
            message_started: false,
        };
        session.hello().await?;
        Ok(session)
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn greeting(&self) -> &Reply {
        &self.greeting
    }

    /// What the last EHLO offered (nothing after a HELO).
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Lets a test pretend the server offered less than it did.
    #[cfg(test)]
    pub(super) fn capabilities_mut(&mut self) -> &mut Capabilities {
        &mut self.capabilities
    }

    /// The handshake's parameters, once STARTTLS has succeeded.
    pub fn tls(&self) -> Option<&TlsDetails> {
        self.tls.as_ref()
    }

    /// STARTTLS (RFC 3207), the handshake with `config` (whose verifier decides whether
    /// the certificate is acceptable) naming `server_name`, then EHLO again: what the
    /// server offered in plaintext is forgotten (§4.2). Anything the server sent after
    /// its 220 and before the handshake is discarded (response injection).
    pub async fn starttls(
        &mut self,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Result<TlsDetails, ClientError> {
        if self.tls.is_some() {
            return Err(ClientError::Tls("TLS is already active".into()));
        }
        let result = self.starttls_inner(config, server_name).await;
        self.settle(result)
    }

    async fn starttls_inner(
        &mut self,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Result<TlsDetails, ClientError> {
        let reply = self.command(b"STARTTLS\r\n", Stage::StartTls).await?;
        if reply.code != 220 {
            return Err(ClientError::Rejected {
                stage: Stage::StartTls,
                reply,
            });
        }
        let stream = self.stream.take().ok_or_else(gone)?;
        let stream = within(self.settings.command_timeout, Stage::TlsHandshake, async {
            starttls_client(stream, config, server_name)
                .await
                .map_err(|e| ClientError::Tls(e.to_string()))
        })
        .await?;
        let details = TlsDetails {
            version: stream.tls().map(|t| t.version.clone()).unwrap_or_default(),
            cipher: stream.tls().map(|t| t.cipher.clone()).unwrap_or_default(),
            peer_certificates: stream.peer_certificates().unwrap_or_default().to_vec(),
        };
        self.stream = Some(stream);
        self.tls = Some(details.clone());
        self.capabilities = Capabilities::default();
        self.hello().await?;
        Ok(details)
    }

    /// Sends one message: MAIL, every RCPT, then the message to the recipients that were
    /// accepted. With PIPELINING the envelope (and DATA) go in one write and the replies
    /// are read in order (RFC 2920); with CHUNKING the message goes as one BDAT LAST
    /// chunk, otherwise dot-stuffed after DATA. Refusals of MAIL, RCPT and the message
    /// are in the [`Transaction`]; an `Err` means nothing is known about the message
    /// (or, for [`ClientError::Unsupported`], that it was never offered).
    pub async fn send(
        &mut self,
        envelope: &ClientEnvelope,
        message: &[u8],
    ) -> Result<Transaction, ClientError> {
        self.message_started = false;
        let commands = EnvelopeCommands::new(envelope, message, &self.capabilities)?;
        let result = self.send_inner(commands, message).await;
        self.settle(result)
    }

    /// Whether the last [`send`](Self::send) got as far as writing the message: after an
    /// error from then on the server may have taken it (its verdict was lost), so sending
    /// it again at once risks a duplicate; before, nothing can have been delivered.
    pub fn message_may_have_arrived(&self) -> bool {
        self.message_started
    }

    /// RSET: the server forgets any transaction under way.
    pub async fn reset(&mut self) -> Result<(), ClientError> {
        let result = self.reset_inner().await;
        self.settle(result)
    }

    /// QUIT, then close (with close_notify under TLS). Errors do not matter any more.
    pub async fn quit(mut self) {
        let limit = self.settings.command_timeout;
        if let Some(stream) = self.stream.as_mut() {
            let _ = timeout(limit, async {
                if stream.write_all(b"QUIT\r\n").await.is_ok() {
                    let _ = read_reply(stream, Stage::Quit).await;
                }
                let _ = stream.shutdown().await;
            })
            .await;
        }
    }

    async fn send_inner(
        &mut self,
        commands: EnvelopeCommands,
        message: &[u8],
    ) -> Result<Transaction, ClientError> {
        let (mail, rcpts, data_go_ahead) = if self.capabilities.pipelining {
            self.envelope_pipelined(&commands).await?
        } else {
            self.envelope_one_by_one(&commands).await?
        };
        let accepted = mail.is_positive() && rcpts.iter().any(Reply::is_positive);
        let recipients = if mail.is_positive() {
            rcpts
        } else {
            vec![mail.clone(); commands.rcpts.len()]
        };
        let data = if accepted {
            Some(self.transfer(message, data_go_ahead).await?)
        } else {
            if data_go_ahead.is_some_and(|reply| reply.code == 354) {
                self.abandon_data().await?;
            }
            None
        };
        Ok(Transaction {
            mail,
            recipients,
            data,
        })
    }

    /// One write for the envelope (after an RSET, if a transaction is left over, and with
    /// DATA unless BDAT will be used), then the replies in order. Returns the replies to
    /// MAIL, each RCPT and, when it was sent, DATA.
    async fn envelope_pipelined(
        &mut self,
        commands: &EnvelopeCommands,
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), ClientError> {
        let reset = self.transaction_open;
        let with_data = !self.capabilities.chunking;
        let mut batch = String::new();
        if reset {
            batch.push_str("RSET\r\n");
        }
        batch.push_str(&commands.mail);
        for rcpt in &commands.rcpts {
            batch.push_str(rcpt);
        }
        if with_data {
            batch.push_str("DATA\r\n");
        }
        self.write(batch.as_bytes(), Stage::Mail, self.settings.command_timeout)
            .await?;
        if reset {
            let reply = self.read(Stage::Rset).await?;
            if !reply.is_positive() {
                // The rest of the batch ran in an unknown state: nothing can be trusted.
                return Err(ClientError::Malformed(format!("RSET refused: {reply}")));
            }
            self.transaction_open = false;
        }
        let mail = self.read_completion(Stage::Mail).await?;
        self.transaction_open = mail.is_positive();
        let mut rcpts = Vec::with_capacity(commands.rcpts.len());
        for _ in &commands.rcpts {
            rcpts.push(self.read_completion(Stage::Rcpt).await?);
        }
        let data = if with_data {
            Some(self.read(Stage::Data).await?)
        } else {
            None
        };
        Ok((mail, rcpts, data))
    }

    /// Without PIPELINING: each command waits for its reply; no RCPT after a refused MAIL.
    async fn envelope_one_by_one(
        &mut self,
        commands: &EnvelopeCommands,
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), ClientError> {
        if self.transaction_open {
            self.reset_inner().await?;
        }
        let mail = self
            .completion(commands.mail.as_bytes(), Stage::Mail)
            .await?;
        if !mail.is_positive() {
            return Ok((mail, Vec::new(), None));
        }
        self.transaction_open = true;
        let mut rcpts = Vec::with_capacity(commands.rcpts.len());
        for rcpt in &commands.rcpts {
            rcpts.push(self.completion(rcpt.as_bytes(), Stage::Rcpt).await?);
        }
        Ok((mail, rcpts, None))
    }

    /// The message to the accepted recipients; `go_ahead` is the reply to a DATA already
    /// sent in the pipeline. Returns the verdict (or DATA's refusal).
    async fn transfer(
        &mut self,
        message: &[u8],
        go_ahead: Option<Reply>,
    ) -> Result<Reply, ClientError> {
        if self.capabilities.chunking {
            let verdict = self.verdict(&bdat_last(message)).await?;
            // After a refused last chunk the envelope may linger (RFC 3030 §2).
            self.transaction_open = !verdict.is_positive();
            return Ok(verdict);
        }
        let go_ahead = match go_ahead {
            Some(reply) => reply,
            None => self.command(b"DATA\r\n", Stage::Data).await?,
        };
        match go_ahead.code {
            354 => {}
            400..=599 => return Ok(go_ahead),
            _ => {
                return Err(ClientError::Malformed(format!(
                    "DATA answered with {go_ahead} instead of 354"
                )));
            }
        }
        let verdict = self.verdict(&dot_stuffed(message)).await?;
        // The end of data ends the transaction, whatever the verdict (RFC 5321 §4.1.1.4).
        self.transaction_open = false;
        Ok(verdict)
    }

    /// RFC 2920 §3.1: a server that said 354 to a pipelined DATA although no recipient
    /// was accepted gets a lone dot; its reply means nothing.
    async fn abandon_data(&mut self) -> Result<(), ClientError> {
        self.write(b".\r\n", Stage::EndOfData, self.settings.data_timeout)
            .await?;
        self.read(Stage::EndOfData).await?;
        self.transaction_open = false;
        Ok(())
    }

    /// Writes the message octets and reads the verdict, under the data timeout.
    async fn verdict(&mut self, wire: &[u8]) -> Result<Reply, ClientError> {
        self.message_started = true;
        let limit = self.settings.data_timeout;
        self.write(wire, Stage::EndOfData, limit).await?;
        let stream = self.connection()?;
        let verdict = within(
            limit,
            Stage::EndOfData,
            read_reply(stream, Stage::EndOfData),
        )
        .await?;
        completion(verdict, Stage::EndOfData)
    }

    async fn reset_inner(&mut self) -> Result<(), ClientError> {
        let reply = self.command(b"RSET\r\n", Stage::Rset).await?;
        if !reply.is_positive() {
            return Err(ClientError::Rejected {
                stage: Stage::Rset,
                reply,
            });
        }
        self.transaction_open = false;
        Ok(())
    }

    /// EHLO, or HELO when EHLO is refused for good (RFC 5321 §3.2).
    async fn hello(&mut self) -> Result<(), ClientError> {
        let ehlo = format!("EHLO {}\r\n", self.settings.helo);
        let reply = self.command(ehlo.as_bytes(), Stage::Ehlo).await?;
        if reply.is_positive() {
            self.capabilities = Capabilities::from_ehlo(&reply);
            return Ok(());
        }
        if !reply.is_permanent() {
            return Err(ClientError::Rejected {
                stage: Stage::Ehlo,
                reply,
            });
        }
        let helo = format!("HELO {}\r\n", self.settings.helo);
        let reply = self.command(helo.as_bytes(), Stage::Helo).await?;
        if !reply.is_positive() {
            return Err(ClientError::Rejected {
                stage: Stage::Helo,
                reply,
            });
        }
        self.capabilities = Capabilities::default();
        Ok(())
    }

    /// Sends one command line and reads its reply, under the command timeout.
    async fn command(&mut self, line: &[u8], stage: Stage) -> Result<Reply, ClientError> {
        self.write(line, stage, self.settings.command_timeout)
            .await?;
        self.read(stage).await
    }

    /// A command whose reply ends its step: 2xx, 4xx or 5xx.
    async fn completion(&mut self, line: &[u8], stage: Stage) -> Result<Reply, ClientError> {
        let reply = self.command(line, stage).await?;
        completion(reply, stage)
    }

    async fn read_completion(&mut self, stage: Stage) -> Result<Reply, ClientError> {
        let reply = self.read(stage).await?;
        completion(reply, stage)
    }

    async fn read(&mut self, stage: Stage) -> Result<Reply, ClientError> {
        let limit = self.settings.command_timeout;
        let stream = self.connection()?;
        within(limit, stage, read_reply(stream, stage)).await
    }

    async fn write(
        &mut self,
        bytes: &[u8],
        stage: Stage,
        limit: Duration,
    ) -> Result<(), ClientError> {
        let stream = self.connection()?;
        within(limit, stage, async {
            stream
                .write_all(bytes)
                .await
                .map_err(|e| ClientError::lost(stage, e))
        })
        .await
    }

    fn connection(&mut self) -> Result<&mut MailStream, ClientError> {
        self.stream.as_mut().ok_or_else(gone)
    }

    /// Drops the connection after an error that leaves its state unknown.
    fn settle<T>(&mut self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        if let Err(
            ClientError::Io(_)
            | ClientError::Timeout { .. }
            | ClientError::Malformed(_)
            | ClientError::Tls(_),
        ) = &result
        {
            self.stream = None;
        }
        result
    }
}

fn gone() -> ClientError {
    ClientError::Io(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the connection was closed after an earlier error",
    ))
}

/// A reply that should end a step but says "go on" (3xx) is a protocol violation: taken
/// as success, it would count a message as delivered that never was.
fn completion(reply: Reply, stage: Stage) -> Result<Reply, ClientError> {
    if reply.code / 100 == 3 {
        return Err(ClientError::Malformed(format!(
            "{stage} answered with {reply}"
        )));
    }
    Ok(reply)
}

async fn within<T>(
    limit: Duration,
    stage: Stage,
    work: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    timeout(limit, work)
        .await
        .unwrap_or(Err(ClientError::Timeout { stage }))
}

/// Reads one whole reply, line by line, within the parser's bounds.
async fn read_reply(stream: &mut MailStream, stage: Stage) -> Result<Reply, ClientError> {
    let mut reader = ReplyReader::new();
    loop {
        let line = read_line(stream, stage).await?;
        match reader.push(&line) {
            Ok(Some(reply)) => return Ok(reply),
            Ok(None) => {}
            Err(ClientError::Malformed(why)) => {
                return Err(ClientError::Malformed(format!("{stage}: {why}")));
            }
            Err(other) => return Err(other),
        }
    }
}

/// One line of at most [`MAX_REPLY_LINE`] octets. A longer one is an error at once
/// (unlike the server side, which skips it and carries on): a server that sends one is
/// not worth waiting for.
async fn read_line(stream: &mut MailStream, stage: Stage) -> Result<Vec<u8>, ClientError> {
    let mut scanned = 0;
    loop {
        let pending = stream.buffered();
        if let Some(pos) = pending[scanned..].iter().position(|&b| b == b'\n') {
            let end = scanned + pos + 1;
            if end > MAX_REPLY_LINE {
                break;
            }
            let line = pending[..end].to_vec();
            stream.consume(end);
            return Ok(line);
        }
        if pending.len() >= MAX_REPLY_LINE {
            break;
        }
        scanned = pending.len();
        match stream.fill().await {
            Ok(0) => return Err(ClientError::closed(stage)),
            Ok(_) => {}
            Err(error) => return Err(ClientError::lost(stage, error)),
        }
    }
    Err(ClientError::Malformed(format!(
        "{stage}: reply line longer than {MAX_REPLY_LINE} octets"
    )))
}
