//! The README's promises held to the code, as the hook table is: the layout names every
//! source file and nothing else, the dependency table matches the Cargo.toml files and says
//! which crate makes which call, the fuzz target's counts and time are the code's, and the
//! probes read exactly the packet bytes the README says.

mod common;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The README's text between `<!-- name:begin -->` and `<!-- name:end -->`, flattened.
fn section(name: &str) -> String {
    let begin = format!("{name}:begin");
    let text = common::readme_section(&begin, &format!("{name}:end"));
    flat(text.trim_start_matches(&format!("<!-- {begin} -->")))
}

/// Whitespace collapsed to single spaces, comment markers dropped.
fn flat(text: &str) -> String {
    text.split_whitespace()
        .filter(|w| !matches!(*w, "///" | "//!" | "//"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every file under `dir` (relative to the workspace), as workspace-relative paths.
fn files_under(dir: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(root().join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let entry = entry.unwrap();
        let path = format!("{dir}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            files_under(&path, out);
        } else {
            out.insert(path);
        }
    }
}

/// The layout block: one entry a line, two spaces of indent per level, a folder ending in `/`.
fn layout() -> Vec<String> {
    let section = common::readme_section("layout:begin", "layout:end");
    let block = section
        .split("```")
        .nth(1)
        .expect("the layout is one code block");
    let mut folders: Vec<String> = Vec::new();
    let mut paths = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let indent = line.len() - line.trim_start().len();
        assert!(indent % 2 == 0, "odd indent: {line:?}");
        let depth = indent / 2;
        assert!(depth <= folders.len(), "no folder above {line:?}");
        folders.truncate(depth);
        let name = line.split_whitespace().next().unwrap();
        assert!(
            name.ends_with('/') || name.contains('.'),
            "a layout line names a folder/ or a file (name.ext) first: {line:?}"
        );
        paths.push(format!("{}{name}", folders.concat()));
        if name.ends_with('/') {
            folders.push(name.to_owned());
        }
    }
    paths
}

#[test]
fn the_layout_names_every_source_file_and_nothing_else() {
    let listed = layout();
    let mut seen = BTreeSet::new();
    for path in &listed {
        assert!(seen.insert(path), "listed twice: {path}");
        let on_disk = root().join(path);
        if path.ends_with('/') {
            assert!(
                on_disk.is_dir(),
                "README layout lists {path}: no such folder"
            );
        } else {
            assert!(
                on_disk.is_file(),
                "README layout lists {path}: no such file"
            );
        }
    }
    let mut files = BTreeSet::new();
    for dir in [
        "netcopy/src",
        "netcopy-ebpf/src",
        "netcopy-common/src",
        "xtask/src",
    ] {
        files_under(dir, &mut files);
    }
    for file in files {
        assert!(
            listed.contains(&file),
            "README layout omits {file} (add it under its folder)"
        );
    }
}

/// The dependency table's rows: (crates named, whether the row says "not used", the row).
fn dependency_rows() -> Vec<(Vec<String>, bool, String)> {
    common::readme_section("deps:begin", "deps:end")
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| crate |"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let crates = cells[1]
                .split([',', '/'])
                .filter_map(|c| c.split_whitespace().next())
                .map(str::to_owned)
                .collect();
            (crates, cells[2].starts_with("**not used"), l.to_owned())
        })
        .collect()
}

/// Every crate the workspace's members declare (any dependency section), but their own.
fn declared_crates() -> BTreeSet<String> {
    let mut crates = BTreeSet::new();
    for member in ["netcopy", "netcopy-common", "netcopy-ebpf", "xtask"] {
        let mut in_deps = false;
        for line in read(&format!("{member}/Cargo.toml")).lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_deps = line.ends_with("dependencies]");
            } else if in_deps && let Some((name, _)) = line.split_once('=') {
                crates.insert(name.trim().to_owned());
            }
        }
    }
    crates.retain(|c| !c.starts_with("netcopy"));
    crates
}

#[test]
fn the_dependency_table_matches_the_cargo_files() {
    let declared = declared_crates();
    let mut named = BTreeSet::new();
    for (crates, unused, row) in dependency_rows() {
        for krate in crates {
            assert_eq!(
                declared.contains(&krate),
                !unused,
                "{krate}: the README says {}, Cargo.toml {}: {row}",
                if unused { "not used" } else { "used" },
                if declared.contains(&krate) {
                    "declares it"
                } else {
                    "does not"
                }
            );
            named.insert(krate);
        }
    }
    for krate in &declared {
        assert!(
            named.contains(krate),
            "README dependency table omits {krate}"
        );
    }
}

/// The text of every userspace source file, and whether it uses nix.
fn sources() -> Vec<(String, bool)> {
    let mut files = BTreeSet::new();
    files_under("netcopy/src", &mut files);
    files
        .iter()
        .map(|f| {
            let text = read(f);
            let nix = text.contains("nix::") || text.contains("use nix");
            (text, nix)
        })
        .collect()
}

/// Whether `word` occurs in `text` as a whole identifier (or path).
fn has_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// The backticked names in the table row of `krate`.
fn calls_of(krate: &str) -> Vec<String> {
    let (_, _, row) = dependency_rows()
        .into_iter()
        .find(|(crates, _, _)| crates == &[krate])
        .unwrap_or_else(|| panic!("no row for {krate}"));
    row.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_calls_named_for_nix_and_libc_are_theirs() {
    let sources = sources();
    let all: String = sources.iter().map(|(t, _)| t.as_str()).collect();
    for name in calls_of("libc") {
        let path = if name.chars().any(|c| c.is_ascii_lowercase()) {
            format!("libc::{name}(")
        } else {
            format!("libc::{name}")
        };
        assert!(
            all.contains(&path),
            "README: libc does `{name}`; no {path} in netcopy/src"
        );
    }
    for name in calls_of("nix") {
        assert!(
            sources.iter().any(|(t, nix)| *nix && has_word(t, &name)),
            "README: nix does `{name}`; no file using nix names it"
        );
        assert!(
            !all.contains(&format!("libc::{name}(")),
            "README: nix does `{name}`, but netcopy/src calls libc::{name}"
        );
    }
}

/// The number written just before `what` in `text` ("20 000 arbitrary lines" -> 20000).
fn number_before(text: &str, what: &str) -> u32 {
    let at = text
        .find(what)
        .unwrap_or_else(|| panic!("no {what:?} in {text:?}"));
    let digits: String = text[..at]
        .split_whitespace()
        .rev()
        .take_while(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number before {what:?}"))
}

/// The value of `const NAME: u32 = ...;` in `code`.
fn constant(code: &str, name: &str) -> u32 {
    let decl = format!("const {name}: u32 = ");
    let at = code.find(&decl).unwrap_or_else(|| panic!("no {decl}")) + decl.len();
    let end = at + code[at..].find(';').unwrap();
    code[at..end].replace('_', "").parse().unwrap()
}

#[test]
fn the_fuzz_target_is_as_the_readme_says() {
    let code = read("netcopy/src/remote/protocol/tests.rs");
    let said = section("fuzz");
    assert_eq!(
        number_before(&said, "arbitrary lines"),
        constant(&code, "LINES")
    );
    assert_eq!(
        number_before(&said, "requests"),
        constant(&code, "REQUESTS")
    );
    assert_eq!(
        number_before(&said, "arbitrary byte streams"),
        constant(&code, "STREAMS")
    );
    // The time it takes is measured, not a constant: the README and the target's own comment
    // quote the same measurement.
    let time = section("fuzztime");
    assert!(time.contains(" s "), "{time}");
    assert!(
        flat(&code).contains(&time),
        "the fuzz target's comment does not say {time:?}"
    );
}

#[test]
fn the_probes_read_only_the_header_bytes_the_readme_names() {
    let skb = read("netcopy-ebpf/src/skb.rs");
    // Every read of the packet, and what bounds it.
    let reads = [
        "let first: [u8; 20] = read(ip, 0)?;",
        "if h[0] >> 4 == 6 { let rest: [u8; 20] = read(ip, 20)?;",
        "if !later_fragment && protocol == IPPROTO_TCP { t = read(ip, header)?;",
        "else if !later_fragment && protocol == IPPROTO_UDP { let udp: [u8; UDP_HEADER] = read(ip, header)?;",
    ];
    let code = flat(&skb);
    for read in reads {
        assert!(code.contains(read), "skb.rs no longer reads {read:?}");
    }
    assert_eq!(
        code.matches("read(ip,").count(),
        reads.len(),
        "a new read of the packet"
    );
    assert!(code.contains("let mut t = [0u8; 16];"));
    assert!(code.contains("const UDP_HEADER: usize = 8;"));
    let said = section("payload");
    for fact in [
        "20 bytes of IPv4, 40 of IPv6",
        "the first 16 bytes of a TCP header (20 long)",
        "the 8 of a UDP header",
        "nothing past the IP header of a later IPv4 fragment or of any other protocol",
    ] {
        assert!(
            said.contains(fact),
            "README no longer says {fact:?}: {said}"
        );
    }
}
