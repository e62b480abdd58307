//! The benchmark messages: plain-text mails of an exact size, with CRLF line ends, the
//! same bytes for every server. Deterministic, so two runs load identical mailboxes.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

#[derive(Args)]
pub struct CorpusArgs {
    /// Directory to write `00001.eml`, `00002.eml`, ... into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Size of each message in bytes, headers and body, CRLF line ends.
    #[arg(long, default_value_t = 4096)]
    size: usize,
}

pub fn run(args: &CorpusArgs) -> anyhow::Result<()> {
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for index in 1..=args.count {
        let path = args.out.join(format!("{index:05}.eml"));
        fs::write(&path, message(index, args.size)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "corpus: {} messages of {} bytes in {}",
        args.count,
        args.size,
        args.out.display()
    );
    Ok(())
}

/// The corpus files of `dir` in name order (which is message order).
pub fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == "eml"));
    files.sort();
    if files.is_empty() {
        bail!("{} holds no .eml files", dir.display());
    }
    Ok(files)
}

const WORDS: &[&str] = &[
    "mail",
    "server",
    "transport",
    "encrypted",
    "handshake",
    "mailbox",
    "message",
    "quarterly",
    "report",
    "meeting",
    "agenda",
    "attached",
    "please",
    "review",
    "tomorrow",
    "budget",
    "certificate",
    "delivery",
    "queue",
    "inbox",
    "thanks",
    "regards",
    "schedule",
    "update",
];

/// Message `index`: headers, then lines of words until exactly `size` bytes.
fn message(index: usize, size: usize) -> anyhow::Result<Vec<u8>> {
    let mut text = format!(
        "Return-Path: <sender{index}@example.net>\r\n\
         From: Sender {index} <sender{index}@example.net>\r\n\
         To: Bench <bench@example.test>\r\n\
         Subject: Benchmark message {index}\r\n\
         Date: Mon, 6 Jan 2025 10:{:02}:{:02} +0000\r\n\
         Message-ID: <bench-{index}@example.net>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n",
        (index / 60) % 60,
        index % 60
    );
    let mut state = (index as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(1);
    let mut line = String::new();
    // Body lines of up to 72 characters; the last line is cut or padded to the exact size
    // (the margin of 4 keeps room for at least one character and its CRLF).
    while text.len() + line.len() + 4 < size {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let word = WORDS[(state >> 33) as usize % WORDS.len()];
        if line.len() + 1 + word.len() > 72 {
            text.push_str(&line);
            text.push_str("\r\n");
            line.clear();
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    let room = size
        .checked_sub(text.len() + 2)
        .with_context(|| format!("--size {size} is too small for the headers"))?;
    line.truncate(room);
    while line.len() < room {
        line.push('.');
    }
    text.push_str(&line);
    text.push_str("\r\n");
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_exact_size_and_only_crlf_line_ends() {
        for index in 1..=3000 {
            let message = message(index, 4096).unwrap();
            assert_eq!(message.len(), 4096);
            assert!(message.ends_with(b"\r\n"));
            for (at, &byte) in message.iter().enumerate() {
                if byte == b'\n' {
                    assert_eq!(message[at - 1], b'\r', "bare LF at {at} in {index}");
                }
            }
        }
    }

    #[test]
    fn messages_are_deterministic_and_distinct() {
        assert_eq!(message(7, 4096).unwrap(), message(7, 4096).unwrap());
        assert_ne!(message(7, 4096).unwrap(), message(8, 4096).unwrap());
    }

    #[test]
    fn too_small_a_size_is_an_error() {
        assert!(message(1, 100).is_err());
    }
}
