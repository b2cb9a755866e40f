//! PLACEHOLDER — the storage helper replaces this file.
