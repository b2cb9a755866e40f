//! PLACEHOLDER — the HTTP helper replaces this file.
