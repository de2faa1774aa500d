//! The Assuan protocol gpg-agent speaks on its Unix socket, client side: one command
//! line at a time, answered by data lines (`D`, percent-escaped), status lines (`S`),
//! comments (`#`), inquiries (`INQUIRE`, which the client answers with `D` lines and
//! `END`, or `CAN`), and finally `OK` or `ERR <code> <description>`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Assuan's line limit is 1000 bytes; a longer line is a protocol error.
const MAX_LINE: u64 = 1000;
/// What one command may return in `D` lines (keys and signatures are a few KiB).
const MAX_DATA: usize = 1 << 20;
/// Nothing here waits for a person (no pinentry is ever let to open), so the agent
/// answers in milliseconds; this only keeps a wedged agent from hanging berth.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AssuanError {
    #[error("talking to gpg-agent: {0}")]
    Io(#[from] std::io::Error),
    #[error("gpg-agent said something unexpected: {0}")]
    Protocol(String),
    #[error("gpg-agent: {message} (error {code})")]
    Agent { code: u32, message: String },
}

impl AssuanError {
    /// The libgpg-error code without its source: `ERR 67108881 ...` is code 17.
    pub fn code(&self) -> Option<u32> {
        match self {
            AssuanError::Agent { code, .. } => Some(code & 0xFFFF),
            _ => None,
        }
    }
}

/// What a command returned before its `OK`.
#[derive(Debug, Default)]
pub struct Reply {
    /// The `D` lines, unescaped and joined.
    pub data: Vec<u8>,
    /// The `S` lines, without the `S `.
    pub status: Vec<String>,
}

pub struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    greeted: bool,
}

impl Connection {
    /// Connects (the greeting is checked with the first reply).
    pub fn connect(socket: &Path) -> Result<Connection, AssuanError> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let writer = stream.try_clone()?;
        Ok(Connection {
            reader: BufReader::new(stream),
            writer,
            greeted: false,
        })
    }

    /// The server's greeting is read with the first reply, not before: commands may
    /// be sent at once (they wait in the socket), which saves a round trip.
    fn read_greeting(&mut self) -> Result<(), AssuanError> {
        if self.greeted {
            return Ok(());
        }
        let greeting = self.read_line()?;
        if greeting != b"OK" && !greeting.starts_with(b"OK ") {
            let shown = String::from_utf8_lossy(&greeting).into_owned();
            return Err(AssuanError::Protocol(format!("greeting {shown:?}")));
        }
        self.greeted = true;
        Ok(())
    }

    /// Sends `command`; inquiries are answered by `inquire` (keyword and arguments in,
    /// data out; `None` cancels the inquiry).
    pub fn transact(
        &mut self,
        command: &str,
        inquire: &mut dyn FnMut(&str) -> Option<Vec<u8>>,
    ) -> Result<Reply, AssuanError> {
        self.pipeline(&[command], inquire)
    }

    /// Sends `commands` in one write and reads their replies in order, stopping at the
    /// first error; returns the last one's reply. The server reads commands one after
    /// the other, so this saves a round trip per command; only the last may inquire
    /// (the answer to an inquiry must not queue behind other commands).
    pub fn pipeline(
        &mut self,
        commands: &[&str],
        inquire: &mut dyn FnMut(&str) -> Option<Vec<u8>>,
    ) -> Result<Reply, AssuanError> {
        let mut out = String::new();
        for command in commands {
            if command.len() as u64 >= MAX_LINE || command.contains(['\n', '\r']) {
                return Err(AssuanError::Protocol("command line too long".into()));
            }
            out.push_str(command);
            out.push('\n');
        }
        self.writer.write_all(out.as_bytes())?;
        self.read_greeting()?;
        let mut reply = Reply::default();
        for (i, _) in commands.iter().enumerate() {
            let last = i + 1 == commands.len();
            reply = self.read_reply(&mut |what| if last { inquire(what) } else { None })?;
        }
        Ok(reply)
    }

    /// The lines answering one command, up to its `OK` or `ERR`.
    fn read_reply(
        &mut self,
        inquire: &mut dyn FnMut(&str) -> Option<Vec<u8>>,
    ) -> Result<Reply, AssuanError> {
        let mut reply = Reply::default();
        loop {
            let line = self.read_line()?;
            let text = || {
                String::from_utf8(line[2..].to_vec())
                    .map_err(|_| AssuanError::Protocol("a status line is not text".into()))
            };
            if line == b"OK" || line.starts_with(b"OK ") {
                return Ok(reply);
            } else if line.starts_with(b"ERR ") {
                let rest = String::from_utf8_lossy(&line[4..]).into_owned();
                let (code, message) = rest.split_once(' ').unwrap_or((&rest, ""));
                return Err(AssuanError::Agent {
                    code: code.parse().unwrap_or(0),
                    message: message.to_string(),
                });
            } else if let Some(data) = line.strip_prefix(b"D ") {
                unescape_into(data, &mut reply.data)?;
                if reply.data.len() > MAX_DATA {
                    return Err(AssuanError::Protocol("too much data".into()));
                }
            } else if line.starts_with(b"S ") {
                reply.status.push(text()?);
            } else if line.starts_with(b"INQUIRE ") {
                let what = String::from_utf8_lossy(&line[8..]).into_owned();
                match inquire(&what) {
                    Some(data) => self.send_data(&data)?,
                    None => self.writer.write_all(b"CAN\n")?,
                }
            } else if line.starts_with(b"#") || line == b"D" || line == b"S" {
                // comments; empty data or status lines
            } else {
                let shown = String::from_utf8_lossy(&line).into_owned();
                return Err(AssuanError::Protocol(format!("line {shown:?}")));
            }
        }
    }

    /// Sends `data` as `D` lines (escaped, each within the line limit), then `END`.
    fn send_data(&mut self, data: &[u8]) -> Result<(), AssuanError> {
        let mut out = Vec::with_capacity(data.len() + 16);
        for chunk in data.chunks(300) {
            out.extend_from_slice(b"D ");
            for &b in chunk {
                match b {
                    b'%' | b'\r' | b'\n' => out.extend(format!("%{b:02X}").bytes()),
                    _ => out.push(b),
                }
            }
            out.push(b'\n');
        }
        out.extend_from_slice(b"END\n");
        self.writer.write_all(&out)?;
        Ok(())
    }

    /// One line without its LF. Data lines escape only %, CR and LF, so a line is
    /// bytes, not text.
    fn read_line(&mut self) -> Result<Vec<u8>, AssuanError> {
        let mut line = Vec::new();
        (&mut self.reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)?;
        if line.last() != Some(&b'\n') {
            return Err(if line.is_empty() {
                AssuanError::Protocol("the agent closed the connection".into())
            } else {
                AssuanError::Protocol("line too long or cut off".into())
            });
        }
        line.pop();
        Ok(line)
    }
}

/// Appends the bytes of an escaped `D` line (`%XX` for %, CR, LF and others).
fn unescape_into(line: &[u8], out: &mut Vec<u8>) -> Result<(), AssuanError> {
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'%' {
            let hex = line
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| AssuanError::Protocol("bad escape in a data line".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(line[i]);
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn unescapes_data_lines() {
        let mut out = Vec::new();
        unescape_into(b"a%25b%0A%0Dc\xff", &mut out).unwrap();
        assert_eq!(out, b"a%b\n\rc\xff");
        assert!(unescape_into(b"a%2", &mut out).is_err());
        assert!(unescape_into(b"a%zz", &mut out).is_err());
    }

    /// Runs `script` as the server of one connection (reader, writer) on a fresh
    /// socket and connects to it: (client, server thread, the socket's directory).
    fn scripted(
        script: impl FnOnce(BufReader<UnixStream>, UnixStream) + Send + 'static,
    ) -> (Connection, std::thread::JoinHandle<()>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("S.test");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let w = s.try_clone().unwrap();
            script(BufReader::new(s), w);
        });
        (Connection::connect(&path).unwrap(), server, dir)
    }

    #[test]
    fn pipelined_commands_answer_in_order() {
        let (mut c, server, _dir) = scripted(|mut r, mut w| {
            w.write_all(b"OK\n").unwrap();
            let mut got = String::new();
            for _ in 0..2 {
                r.read_line(&mut got).unwrap();
            }
            assert_eq!(got, "A\nB\n");
            w.write_all(b"D a\nOK\nD b\nOK\n").unwrap();
            for _ in 0..3 {
                r.read_line(&mut got).unwrap();
            }
            assert_eq!(got, "A\nB\nC\nD\nE\n");
            w.write_all(b"OK\nERR 5 no\nOK\n").unwrap();
        });
        // The last command's reply, not the first's.
        let reply = c.pipeline(&["A", "B"], &mut |_| None).unwrap();
        assert_eq!(reply.data, b"b");
        let err = c.pipeline(&["C", "D", "E"], &mut |_| None).unwrap_err();
        assert_eq!(err.code(), Some(5));
        server.join().unwrap();
    }

    /// A scripted server: data, status, an inquiry answered, then OK; then an ERR;
    /// then an over-long line.
    #[test]
    fn transact_against_a_scripted_server() {
        let (mut c, server, _dir) = scripted(|mut r, mut w| {
            let mut line = String::new();
            w.write_all(b"OK hello\n").unwrap();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "PKSIGN\n");
            w.write_all(b"# comment\nS PROGRESS x\nINQUIRE PASSPHRASE\n")
                .unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "D p%25w%0A\n");
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "END\n");
            w.write_all(b"D (3:abc%0A)\nD \xffx\nOK\n").unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            w.write_all(b"ERR 67108881 No secret key <GPG Agent>\n")
                .unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            w.write_all(&[b'D'; 2000]).unwrap();
        });
        let reply = c
            .transact("PKSIGN", &mut |what| {
                (what == "PASSPHRASE").then(|| b"p%w\n".to_vec())
            })
            .unwrap();
        assert_eq!(reply.data, b"(3:abc\n)\xffx");
        assert_eq!(reply.status, vec!["PROGRESS x"]);
        let err = c.transact("HAVEKEY x", &mut |_| None).unwrap_err();
        assert_eq!(err.code(), Some(17));
        assert!(matches!(
            c.transact("X", &mut |_| None),
            Err(AssuanError::Protocol(_))
        ));
        server.join().unwrap();
        assert!(c.transact("a\nb", &mut |_| None).is_err());
    }
}
