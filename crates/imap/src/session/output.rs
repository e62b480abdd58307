//! Where a command's responses go: a buffer that the driver writes in one piece, or,
//! for responses too large to hold (a FETCH of thousands of messages), in chunks of
//! [`FLUSH_AT`] as they fill. Tests run without a stream and read the whole buffer.

use std::io;

use sealpost_tls::MailStream;

/// Large enough that a FETCH goes out in few big writes, small enough that a session
/// never holds a whole mailbox in memory.
pub const FLUSH_AT: usize = 256 * 1024;

pub struct Output<'s> {
    pub buf: Vec<u8>,
    stream: Option<&'s mut MailStream>,
}

impl<'s> Output<'s> {
    pub fn new(stream: Option<&'s mut MailStream>) -> Self {
        Self {
            buf: Vec::new(),
            stream,
        }
    }

    /// Writes out what is buffered once it has grown past [`FLUSH_AT`].
    pub async fn flush_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if let Some(stream) = self.stream.as_deref_mut()
            && !self.buf.is_empty()
        {
            stream.write_all(&self.buf).await?;
            self.buf.clear();
            if self.buf.capacity() > FLUSH_AT * 2 {
                self.buf = Vec::new();
            }
        }
        Ok(())
    }
}
