//! Splits a provider's byte stream (a child's stdout, an HTTP body) into lines with a hard cap on a line's
//! length. An agent can print a multi-megabyte line (a whole file in a tool result), and a broken one can
//! print gigabytes without a newline: an unbounded `lines()` would buffer all of it. Here a line over the cap
//! is counted and dropped while it streams past, so memory stays within the cap plus one read chunk.

/// One line of the stream, without its newline.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    Full(Vec<u8>),
    /// A line longer than the cap, skipped; `len` is its length in bytes.
    TooLong {
        len: usize,
    },
}

pub(crate) struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    /// Bytes of the current line seen so far once it went over the cap.
    overflow: Option<usize>,
}

impl LineSplitter {
    pub(crate) fn new(max: usize) -> LineSplitter {
        LineSplitter {
            buf: Vec::new(),
            max,
            overflow: None,
        }
    }

    /// Takes the next chunk of the stream and appends every line it completes to `out`.
    pub(crate) fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Line>) {
        while !chunk.is_empty() {
            let (part, rest, complete) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &[][..], false),
            };
            self.take(part);
            if complete {
                out.push(self.finish_line());
            }
            chunk = rest;
        }
    }

    /// The stream ended: a last line without a newline (a truncated write) is still a line.
    pub(crate) fn finish(&mut self) -> Option<Line> {
        if self.buf.is_empty() && self.overflow.is_none() {
            None
        } else {
            Some(self.finish_line())
        }
    }

    fn take(&mut self, part: &[u8]) {
        if let Some(seen) = &mut self.overflow {
            *seen += part.len();
        } else if self.buf.len() + part.len() > self.max {
            self.overflow = Some(self.buf.len() + part.len());
            self.buf = Vec::new();
        } else {
            self.buf.extend_from_slice(part);
        }
    }

    fn finish_line(&mut self) -> Line {
        match self.overflow.take() {
            Some(len) => Line::TooLong { len },
            None => {
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Line::Full(line)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<Line> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        out.extend(s.finish());
        out
    }

    fn full(s: &str) -> Line {
        Line::Full(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_may_span_chunks_and_a_chunk_may_hold_many_lines() {
        let out = split(100, &[b"{\"a\":", b"1}\n{\"b\":2}\n{\"c\"", b":3}\r\n"]);
        assert_eq!(
            out,
            vec![full("{\"a\":1}"), full("{\"b\":2}"), full("{\"c\":3}")]
        );
    }

    #[test]
    fn a_truncated_last_line_is_still_returned() {
        let out = split(100, &[b"one\ntwo"]);
        assert_eq!(out, vec![full("one"), full("two")]);
    }

    #[test]
    fn a_line_over_the_cap_is_skipped_and_measured_and_the_next_one_is_kept() {
        let long = [b'x'; 25];
        let out = split(10, &[b"ok\n", &long[..12], &long[12..], b"\nafter\n"]);
        assert_eq!(
            out,
            vec![full("ok"), Line::TooLong { len: 25 }, full("after")]
        );
        // Exactly the cap is allowed.
        let out = split(3, &[b"abc\nabcd\n"]);
        assert_eq!(out, vec![full("abc"), Line::TooLong { len: 4 }]);
    }

    #[test]
    fn memory_stays_within_the_cap_while_a_huge_line_streams_past() {
        let mut s = LineSplitter::new(1024);
        let mut out = Vec::new();
        let chunk = vec![b'y'; 64 * 1024];
        for _ in 0..64 {
            s.push(&chunk, &mut out);
            assert!(s.buf.capacity() <= 1024 + chunk.len());
        }
        s.push(b"\n", &mut out);
        assert_eq!(
            out,
            vec![Line::TooLong {
                len: 64 * 64 * 1024
            }]
        );
    }
}
