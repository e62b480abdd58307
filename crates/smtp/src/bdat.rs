//! The BDAT chunk receiver (CHUNKING, RFC 3030): exactly the announced number of octets,
//! binary-safe, no dot processing.
//!
//! A chunk is consumed even when the command is refused (no transaction, size exceeded),
//! because its octets are data, never commands (RFC 3030 §2: the server must read the
//! chunk before replying).

use crate::body::MessageBody;
use crate::reply::Reply;

#[derive(Debug)]
pub(crate) enum ChunkSink {
    /// Octets go into the transaction's message.
    Message(MessageBody),
    /// Octets are read and dropped; the reply is sent once they are.
    Refused(Reply),
}

#[derive(Debug)]
pub(crate) struct ChunkReceiver {
    sink: ChunkSink,
    size: usize,
    remaining: usize,
    last: bool,
}

impl ChunkReceiver {
    pub(crate) fn new(mut body: MessageBody, size: usize, last: bool) -> Self {
        body.announce(size);
        Self {
            sink: ChunkSink::Message(body),
            size,
            remaining: size,
            last,
        }
    }

    pub(crate) fn refused(reply: Reply, size: usize, last: bool) -> Self {
        Self {
            sink: ChunkSink::Refused(reply),
            size,
            remaining: size,
            last,
        }
    }

    /// Takes what belongs to this chunk from `input`; returns how many octets that was.
    pub(crate) fn feed(&mut self, input: &[u8]) -> usize {
        let take = self.remaining.min(input.len());
        if let ChunkSink::Message(body) = &mut self.sink {
            body.push(&input[..take]);
        }
        self.remaining -= take;
        take
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.remaining == 0
    }

    /// The sink, the chunk's size and whether it was the LAST one.
    pub(crate) fn into_parts(self) -> (ChunkSink, usize, bool) {
        (self.sink, self.size, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::BodyError;

    #[test]
    fn takes_exactly_the_announced_octets_binary_safe() {
        let chunk: Vec<u8> = (0..=255u8).collect();
        let mut input = chunk.clone();
        input.extend_from_slice(b"BDAT 0 LAST\r\n");
        let mut receiver = ChunkReceiver::new(MessageBody::new(1000), 256, false);
        assert_eq!(receiver.feed(&input[..100]), 100);
        assert!(!receiver.is_complete());
        assert_eq!(receiver.feed(&input[100..]), 156);
        assert!(receiver.is_complete());
        let (ChunkSink::Message(body), size, last) = receiver.into_parts() else {
            panic!("refused")
        };
        assert_eq!((body.size(), size, last), (256, 256, false));
    }

    #[test]
    fn refused_chunk_is_still_consumed() {
        let mut receiver = ChunkReceiver::refused(Reply::no_valid_recipients(), 5, true);
        assert_eq!(receiver.feed(b"QUIT\r\nNOOP\r\n"), 5);
        assert!(receiver.is_complete());
    }

    #[test]
    fn chunk_that_would_exceed_the_size_limit_is_dropped_while_read() {
        let mut receiver = ChunkReceiver::new(MessageBody::new(10), 4096, true);
        assert_eq!(receiver.feed(&[b'a'; 4096]), 4096);
        let (ChunkSink::Message(body), _, _) = receiver.into_parts() else {
            panic!("refused")
        };
        assert_eq!(body.held(), 0);
        assert_eq!(body.finish(), Err(BodyError::TooBig));
    }
}
