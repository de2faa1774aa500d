//! A detached container's output, kept as podman keeps it (its `k8s-file` format):
//! one record per line or piece of a line, `TIME STREAM F|P TEXT`, where `F` ends a
//! line and `P` is a piece of one (a write without a newline, or a long line cut), so
//! that `logs` can give each line to the stream it came from, with its time.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::{io as io_err, Result};

/// The most of a line one record holds; a longer line is cut into pieces.
const PIECE: usize = 16 << 10;

/// A stream being relayed (none once it ended), its descriptor, its name.
type Stream = (Option<Box<dyn Read + Send>>, i32, &'static str);

/// Appends records to a container's log from the threads relaying its streams.
#[derive(Clone)]
pub(crate) struct LogWriter {
    file: Arc<Mutex<File>>,
}

impl LogWriter {
    pub fn create(path: &Path) -> Result<LogWriter> {
        // Appended to: `logs` shows every run since the container was made, as
        // podman's does, and a `logs -f` following it is not left past a new end.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        Ok(LogWriter {
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Copies the container's stdout and stderr into the log until both end (with
    /// `echo`, to berth's own stdout and stderr as well). One thread polls both,
    /// stdout first when both have data, so that what the process wrote to stdout
    /// before it wrote to stderr is logged before it.
    ///
    /// A first stderr piece that starts with `hold` (the runtime's name: its own error
    /// when it could not start the process, which it writes to the container's stderr)
    /// is held back, not copied, until more stderr comes; the thread returns what it
    /// still holds at the end, for [`LogWriter::release`] or to drop.
    pub fn relay(
        &self,
        stdout: std::process::ChildStdout,
        stderr: std::process::ChildStderr,
        echo: bool,
        hold: Option<String>,
    ) -> JoinHandle<Vec<u8>> {
        use std::os::fd::AsRawFd;
        let log = self.clone();
        std::thread::spawn(move || {
            let mut streams: [Stream; 2] = [
                (None, stdout.as_raw_fd(), "stdout"),
                (None, stderr.as_raw_fd(), "stderr"),
            ];
            streams[0].0 = Some(Box::new(stdout));
            streams[1].0 = Some(Box::new(stderr));
            let mut buf = vec![0u8; PIECE];
            let mut held: Vec<u8> = Vec::new();
            let mut stderr_seen = false;
            while streams.iter().any(|s| s.0.is_some()) {
                let mut fds: Vec<libc::pollfd> = streams
                    .iter()
                    .map(|s| libc::pollfd {
                        fd: if s.0.is_some() { s.1 } else { -1 },
                        events: libc::POLLIN,
                        revents: 0,
                    })
                    .collect();
                // SAFETY: `fds` is a valid array of pollfd for its length; a
                // negative fd is ignored by poll.
                let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
                if n < 0 {
                    if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return held;
                }
                // poll looks at the pipes one after the other: it can see stderr's
                // new data and not the stdout data written before it. A second look,
                // after the first saw it, does see that data; stdout is read first.
                let first: Vec<i16> = fds.iter().map(|f| f.revents).collect();
                // SAFETY: as above; a zero timeout does not wait.
                if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) } < 0 {
                    continue;
                }
                for (fd, seen) in fds.iter_mut().zip(first) {
                    fd.revents |= seen;
                }
                for (fd, (reader, _, stream)) in fds.iter().zip(streams.iter_mut()) {
                    if fd.revents == 0 {
                        continue;
                    }
                    let Some(r) = reader.as_mut() else { continue };
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => *reader = None,
                        Ok(n) => {
                            if *stream == "stderr" {
                                let first = !std::mem::replace(&mut stderr_seen, true);
                                let prefix = hold.as_deref().map(str::as_bytes);
                                if first && prefix.is_some_and(|p| buf[..n].starts_with(p)) {
                                    held.extend_from_slice(&buf[..n]);
                                    continue;
                                }
                                if !held.is_empty() {
                                    let earlier = std::mem::take(&mut held);
                                    if log.copy_out(stream, &earlier, echo).is_err() {
                                        return held;
                                    }
                                }
                            }
                            if log.copy_out(stream, &buf[..n], echo).is_err() {
                                return held;
                            }
                            if n == buf.len() {
                                // More may wait in this pipe: read it before the
                                // other one (the next poll sees it).
                                break;
                            }
                        }
                    }
                }
            }
            held
        })
    }

    /// Copies stderr output held back by [`LogWriter::relay`] (it was the
    /// container's own after all) into the log, and with `echo` to berth's stderr.
    pub fn release(&self, bytes: &[u8], echo: bool) -> io::Result<()> {
        self.copy_out("stderr", bytes, echo)
    }

    /// Output of `stream` into the log, and with `echo` to berth's own stream.
    fn copy_out(&self, stream: &str, bytes: &[u8], echo: bool) -> io::Result<()> {
        if echo {
            // The terminal going away must not stop the log.
            let _ = echo_to(stream, bytes);
        }
        self.records(stream, bytes)
    }

    /// What one read gave: a record per line, the rest a piece.
    fn records(&self, stream: &str, bytes: &[u8]) -> io::Result<()> {
        let time = crate::rfc3339_now();
        let mut out = Vec::with_capacity(bytes.len() + 64);
        let mut rest = bytes;
        while !rest.is_empty() {
            let (text, tag, next) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], "F", &rest[i + 1..]),
                None => (rest, "P", &rest[rest.len()..]),
            };
            out.extend_from_slice(format!("{time} {stream} {tag} ").as_bytes());
            out.extend_from_slice(text);
            out.push(b'\n');
            rest = next;
        }
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&out)
    }
}

/// Writes bytes of the container's `stream` to the same stream of berth's own.
fn echo_to(stream: &str, bytes: &[u8]) -> io::Result<()> {
    match stream {
        "stderr" => {
            let mut e = io::stderr().lock();
            e.write_all(bytes)?;
            e.flush()
        }
        _ => {
            let mut o = io::stdout().lock();
            o.write_all(bytes)?;
            o.flush()
        }
    }
}

/// One line of a container's output (its pieces joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When its first piece was written (RFC 3339).
    pub time: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub text: Vec<u8>,
    /// Whether the line ended with a newline (the last one may not have).
    pub ended: bool,
}

/// Joins records into lines: feed it each record, take the lines it completes.
/// Pieces are joined per stream (stdout's piece, then a line of stderr, then the
/// rest of stdout's line).
#[derive(Debug, Default)]
pub struct LogReader {
    /// A line in pieces, per stream (stdout, stderr).
    partial: [Option<LogLine>; 2],
}

impl LogReader {
    /// Takes one record (without its newline); returns the line it completes.
    /// A record that is not one (a log written otherwise) is taken as a line of
    /// stdout.
    pub fn record(&mut self, record: &[u8]) -> Option<LogLine> {
        let mut parts = record.splitn(4, |b| *b == b' ');
        let (time, stream, tag, text) =
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(t), Some(s @ (b"stdout" | b"stderr")), Some(tag @ (b"F" | b"P")), text) => {
                    (t, s, tag, text.unwrap_or_default())
                }
                _ => (&b""[..], &b"stdout"[..], &b"F"[..], record),
            };
        let slot = &mut self.partial[usize::from(stream == b"stderr")];
        let line = slot.get_or_insert_with(|| LogLine {
            time: String::from_utf8_lossy(time).into_owned(),
            stream: String::from_utf8_lossy(stream).into_owned(),
            text: Vec::new(),
            ended: false,
        });
        line.text.extend_from_slice(text);
        if tag == b"F" {
            let mut done = slot.take()?;
            done.ended = true;
            return Some(done);
        }
        None
    }

    /// Lines still in pieces when the log ends.
    pub fn finish(&mut self) -> impl Iterator<Item = LogLine> + '_ {
        self.partial.iter_mut().filter_map(Option::take)
    }
}

/// Every line of a log, in order.
pub fn read_log(bytes: &[u8]) -> Vec<LogLine> {
    let mut reader = LogReader::default();
    let mut lines: Vec<LogLine> = bytes
        .split(|b| *b == b'\n')
        .filter(|r| !r.is_empty())
        .filter_map(|r| reader.record(r))
        .collect();
    lines.extend(reader.finish());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_pieces_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let w = LogWriter::create(&path).unwrap();
        w.records("stdout", b"one\ntw").unwrap();
        w.records("stderr", b"err\n").unwrap();
        w.records("stdout", b"o\nlast").unwrap();
        let lines = read_log(&std::fs::read(&path).unwrap());
        let got: Vec<(&str, &[u8], bool)> = lines
            .iter()
            .map(|l| (l.stream.as_str(), &l.text[..], l.ended))
            .collect();
        assert_eq!(
            got,
            vec![
                ("stdout", &b"one"[..], true),
                ("stderr", &b"err"[..], true),
                ("stdout", &b"two"[..], true),
                ("stdout", &b"last"[..], false),
            ]
        );
        assert!(lines[0].time.ends_with('Z'), "{}", lines[0].time);
    }
}
