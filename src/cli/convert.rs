//! PLACEHOLDER — the adapters helper replaces this file.
