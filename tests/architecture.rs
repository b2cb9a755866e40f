//! The direction of dependencies between the crate's module folders (docs/ARCHITECTURE.md, "Rooms"):
//! api → engine → actors → messages, storage, providers. An actor never reaches the engine or the API
//! (children reach their parents through handles given to them); the protocol and the providers know no
//! actor; the API reaches the actors only through the engine. Read from the sources: every `crate::` path
//! outside comments, grouped imports (`use crate::{a, b::c}`) included. And the providers take no lock:
//! each runner's and each sidecar's state belongs to one task, reached by messages.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each folder (or file) of src/, and the top-level modules it must not name (the service's code never
/// names the test doubles of src/testkit).
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "actors",
        &["engine", "api", "cluster", "cli", "loadtest", "testkit"],
    ),
    // The actor protocol (messages/{session,project}.rs) names the providers' handles a session holds
    // (a runner, a start's spec): providers sit beside messages, below the actors.
    (
        "messages",
        &[
            "actors", "engine", "api", "cluster", "cli", "loadtest", "testkit",
        ],
    ),
    (
        "providers",
        &[
            "actors", "engine", "api", "cluster", "cli", "loadtest", "testkit",
        ],
    ),
    (
        "storage",
        &[
            "actors",
            "engine",
            "api",
            "cluster",
            "cli",
            "loadtest",
            "providers",
            "testkit",
        ],
    ),
    ("engine", &["api", "cluster", "cli", "loadtest", "testkit"]),
    // Test doubles stand in for a provider: they see what a provider sees.
    (
        "testkit",
        &[
            "actors", "engine", "api", "cluster", "cli", "loadtest", "storage",
        ],
    ),
    ("api", &["actors", "testkit"]),
    ("cluster", &["actors", "testkit"]),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The files of a module: `src/<name>.rs` and everything under `src/<name>/`.
fn module_files(name: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let file = src.join(format!("{name}.rs"));
    if file.exists() {
        files.push(file);
    }
    let dir = src.join(name);
    if dir.is_dir() {
        sources(&dir, &mut files);
    }
    assert!(!files.is_empty(), "no sources for module {name}");
    files
}

/// The top-level modules a source names through `crate::`, with the line of each.
fn named_modules(source: &str) -> Vec<(String, usize)> {
    // Comments out, lines kept (so positions still give line numbers).
    let code: String = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // `$crate::` (macros) is the crate too.
        let rest = &code[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            found.push((ident(rest), line_of(at)));
            continue;
        };
        // `crate::{a::b, c::{d, e}}`: the first segment of each top-level item.
        let (mut depth, mut item_start) = (0usize, true);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if item_start && !c.is_whitespace() => {
                    item_start = false;
                    found.push((ident(&group[i..]), line_of(at)));
                }
                _ => {}
            }
        }
    }
    found
}

#[test]
fn dependencies_point_one_way() {
    let mut broken = BTreeSet::new();
    for (module, forbidden) in FORBIDDEN {
        for file in module_files(module) {
            let source = std::fs::read_to_string(&file).unwrap();
            for (named, line) in named_modules(&source) {
                if forbidden.contains(&named.as_str()) {
                    broken.insert(format!(
                        "{}:{line}: {module} must not use crate::{named}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "dependencies against the direction api → engine → actors → messages, storage, providers:\n{}",
        broken.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// Children reach their parents through the handles given to them (`Outbox`es of the parent's
/// messages), never by the parent's type: a session knows neither its project, its router nor the
/// supervisor; a project does not know the supervisor.
const PARENTS: &[(&str, &[&str])] = &[
    ("actors/session", &["ProjectActor", "Router", "Supervisor"]),
    ("actors/project", &["Supervisor"]),
];

#[test]
fn children_do_not_name_their_parents() {
    let mut broken = Vec::new();
    for (module, parents) in PARENTS {
        for file in module_files(module) {
            let source = std::fs::read_to_string(&file).unwrap();
            for (n, line) in source.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let words = code.split(|c: char| !(c.is_alphanumeric() || c == '_'));
                for word in words.filter(|w| parents.contains(w)) {
                    broken.push(format!(
                        "{}:{}: {module} names {word}",
                        file.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_scanner_sees_plain_grouped_and_macro_paths() {
    let source = "use crate::engine::Engine;\nuse crate::{\n    api,\n    actors::{x, y},\n};\n$crate::loadtest::run();\n// crate::cli in a comment\n";
    let names: Vec<(String, usize)> = named_modules(source);
    let names: Vec<(&str, usize)> = names.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    assert_eq!(
        names,
        [("engine", 1), ("api", 2), ("actors", 2), ("loadtest", 6)]
    );
}

/// The names of locks: a provider's state belongs to one task (a runner, a sidecar's table) and is
/// reached by messages, so none of these may appear in src/providers.
const LOCKS: &[&str] = &[
    "Mutex",
    "MutexGuard",
    "RwLock",
    "RwLockReadGuard",
    "RwLockWriteGuard",
    "ReentrantMutex",
    "Condvar",
    "parking_lot",
];

/// Every lock named outside comments, with its line.
fn locks_in(source: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let words = code.split(|c: char| !(c.is_alphanumeric() || c == '_'));
        for word in words.filter(|w| LOCKS.contains(w)) {
            found.push((word.to_owned(), n + 1));
        }
    }
    found
}

#[test]
fn providers_take_no_locks() {
    let mut broken = Vec::new();
    for file in module_files("providers") {
        let source = std::fs::read_to_string(&file).unwrap();
        for (lock, line) in locks_in(&source) {
            broken.push(format!("{}:{line}: {lock}", file.display()));
        }
    }
    assert!(
        broken.is_empty(),
        "a lock in src/providers (own the state in a task and send it messages, like providers/turns.rs):\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_lock_scanner_sees_std_tokio_and_grouped_locks_but_not_comments() {
    let source = "use std::sync::{Arc, Mutex};\nlet t: tokio::sync::RwLock<u8>;\n// a Mutex in a comment\nlet m = parking_lot::Mutex::new(1); // Condvar\nlet mutexes = 1;\n";
    let found = locks_in(source);
    let found: Vec<(&str, usize)> = found.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    assert_eq!(
        found,
        [
            ("Mutex", 1),
            ("RwLock", 2),
            ("parking_lot", 4),
            ("Mutex", 4)
        ]
    );
}
