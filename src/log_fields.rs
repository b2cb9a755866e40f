//! The text log format's field formatter: the same bytes as tracing-subscriber's `DefaultFields`, made
//! cheaper for the fields every HTTP request's span carries (its route and ids), which are formatted when
//! the span is made and were ~9 % of the HTTP workers' instructions per session start:
//! - a plain string field is written as it is: for printable ASCII without `"` or `\`, `str`'s `Debug`
//!   (which the default runs through `core::fmt`) only adds the quotes;
//! - a span's fields are gathered on the stack and handed to the span's `String` in one write, which
//!   allocates it once at its size instead of growing it from empty by doubling (4–5 reallocations).
//!
//! Anything else (the message, errors, numbers, `%`/`?` values, strings `Debug` would escape, the
//! `r#`/`log.` names) is handed to `DefaultVisitor` itself, and output with ANSI colours (or without their
//! sanitising) to `DefaultFields` whole, so the lines stay byte for byte what they were. The JSON format
//! has its own formatter and does not use this one.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};
use tracing_subscriber::fmt::FormatFields;

/// How many bytes of fields are gathered before they are passed on: a request span's are ~100.
const STAGED: usize = 256;

/// Install with `fmt().fmt_fields(PlainFields)`; appending fields recorded later is the trait's default
/// (a space, then these), as for `DefaultFields`.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainFields;

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() || !writer.sanitizes_ansi_escapes() {
            return DefaultFields::new().format_fields(writer, fields);
        }
        let mut staged = Staged::new(writer);
        let mut visitor = PlainVisitor {
            // Without colours and sanitising, as the writer it stands for (checked above).
            writer: Writer::new(&mut staged),
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result?;
        staged.flush()
    }
}

/// Writes one span's or event's fields, separated by one space.
struct PlainVisitor<'a> {
    writer: Writer<'a>,
    /// No field written yet: the next needs no separating space.
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Lets `DefaultVisitor` write this one field, told whether a separator is due.
    fn delegate(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut default);
        self.result = default.finish();
        // The default skips the `log` crate's `log.*` metadata fields without writing anything.
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }

    fn write_plain(&mut self, name: &str, value: &str) -> fmt::Result {
        if !self.is_empty {
            self.writer.write_char(' ')?;
        }
        self.is_empty = false;
        self.writer.write_str(name)?;
        self.writer.write_str("=\"")?;
        self.writer.write_str(value)?;
        self.writer.write_char('"')
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        if self.result.is_ok() && has_plain_name(name) && debug_is_verbatim(value) {
            self.result = self.write_plain(name, value);
        } else {
            self.delegate(field, |default| default.record_str(field, value));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.delegate(field, |default| default.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.delegate(field, |default| default.record_debug(field, value));
    }
}

/// Text on its way to a `Writer`, gathered on the stack and passed on in as few writes as fit.
struct Staged<'w> {
    out: Writer<'w>,
    buf: [u8; STAGED],
    len: usize,
}

impl<'w> Staged<'w> {
    fn new(out: Writer<'w>) -> Self {
        Self {
            out,
            buf: [0; STAGED],
            len: 0,
        }
    }

    /// Passes on what is gathered.
    fn flush(&mut self) -> fmt::Result {
        if self.len > 0 {
            // Whole `str`s were copied in, so this is text; a failure would be a bug, reported as one.
            let text = std::str::from_utf8(&self.buf[..self.len]).map_err(|_| fmt::Error)?;
            self.out.write_str(text)?;
            self.len = 0;
        }
        Ok(())
    }
}

impl fmt::Write for Staged<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len + s.len() > STAGED {
            self.flush()?;
            if s.len() > STAGED {
                return self.out.write_str(s);
            }
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

/// A name the default writes as `name=` followed by the value's `Debug` (the message is written bare,
/// `r#` loses its prefix, `log.*` is skipped).
fn has_plain_name(name: &str) -> bool {
    name != "message" && !name.starts_with("r#") && !name.starts_with("log.")
}

/// Whether `format!("{value:?}")` is the value between two quotes: printable ASCII other than `"` and
/// `\` is the only text `str`'s `Debug` does not escape that is this cheap to recognise.
fn debug_is_verbatim(value: &str) -> bool {
    value
        .bytes()
        .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::format::DefaultFields;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[derive(Debug)]
    struct Failure;

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("disk \"full\"")
        }
    }

    impl std::error::Error for Failure {}

    /// Spans and events with every kind of field the formatter tells apart.
    fn log_everything() {
        let quoted = "say \"hi\"";
        let outer = tracing::info_span!(
            "request",
            log.target = "skipped",
            method = %"POST",
            route = "/v1/projects/{projectId}/sessions",
            projectId = Some("p-1"),
            sessionId = Option::<&str>::None,
            later = tracing::field::Empty,
        );
        let _outer = outer.enter();
        outer.record("later", "recorded after");
        let inner = tracing::info_span!(
            "inner",
            quoted,
            backslash = "a\\b",
            newline = "line\nbreak",
            accented = "café",
            control = "bell\u{7}",
            empty = "",
            r#type = "raw",
            count = 7u64,
            flag = true,
            // Longer than what is gathered on the stack, and after it, fields that fill it again.
            long = "long".repeat(80).as_str(),
            half = "half".repeat(40).as_str(),
            after = "the stack's second fill",
        );
        let _inner = inner.enter();
        let error: &(dyn std::error::Error + 'static) = &Failure;
        tracing::warn!(
            status = 503u16,
            elapsed_ms = 1.5,
            plain = "ok",
            shown = %"display",
            debugged = ?vec!["a"],
            error,
            "request failed"
        );
        tracing::warn!(message = "a message given as a str \"field\"");
        tracing::info!(
            log.target = "first",
            after = "log field",
            "{} and {}",
            1,
            "two"
        );
    }

    /// Everything `log_everything` writes, formatted by `DefaultFields` or (`plain`) by `PlainFields`.
    fn lines(ansi: bool, sanitize: bool, plain: bool) -> String {
        use tracing_subscriber::layer::SubscriberExt;
        let buffer = Buffer::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(buffer.clone())
            .with_ansi(ansi)
            .with_ansi_sanitization(sanitize)
            .without_time();
        let registry = tracing_subscriber::registry();
        if plain {
            let subscriber = registry.with(layer.fmt_fields(PlainFields));
            tracing::subscriber::with_default(subscriber, log_everything);
        } else {
            let subscriber = registry.with(layer.fmt_fields(DefaultFields::new()));
            tracing::subscriber::with_default(subscriber, log_everything);
        }
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn lines_are_byte_for_byte_those_of_the_default_formatter() {
        for (ansi, sanitize) in [(false, true), (true, true), (false, false)] {
            let default = lines(ansi, sanitize, false);
            assert_eq!(default.lines().count(), 3, "{default}");
            assert!(default.contains(&"long".repeat(80)), "{default}");
            assert_eq!(
                lines(ansi, sanitize, true),
                default,
                "ansi {ansi}, sanitize {sanitize}"
            );
        }
    }

    #[test]
    fn only_strings_debug_leaves_alone_are_written_verbatim() {
        for plain in ["", "/v1/projects/{projectId}/sessions", "p-1 ~!@#$%^&*()'"] {
            assert!(debug_is_verbatim(plain), "{plain}");
            assert_eq!(format!("{plain:?}"), format!("\"{plain}\""));
        }
        for escaped in ["\"", "\\", "\n", "\t", "é", "\u{7f}"] {
            assert!(!debug_is_verbatim(escaped), "{escaped:?}");
        }
    }
}
