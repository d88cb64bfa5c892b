//! The house's rules, held: no source file over 450 lines and no function over 80, in the
//! userspace, the shared types, the eBPF programs and xtask (a function's length runs from its
//! `fn` line to its closing brace, braces counted outside strings, chars and comments); one
//! module style (`foo/mod.rs`, never `foo.rs` beside `foo/`); and no import circle between
//! netcopy's modules.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

const MAX_FILE_LINES: usize = 450;
const MAX_FN_LINES: usize = 80;

const TREES: [&str; 4] = [
    "netcopy/src",
    "netcopy-common/src",
    "netcopy-ebpf/src",
    "xtask/src",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir` (workspace-relative).
fn rust_files(dir: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(root().join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let entry = entry.unwrap();
        let path = format!("{dir}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            rust_files(&path, out);
        } else if path.ends_with(".rs") {
            out.insert(path);
        }
    }
}

fn all_files() -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for dir in TREES {
        rust_files(dir, &mut files);
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    files
}

/// The code with every comment, string and char literal blanked (newlines kept), so that
/// only the code's own braces, brackets and words remain.
fn code_only(text: &str) -> Vec<char> {
    let s: Vec<char> = text.chars().collect();
    let mut out = s.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(s.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let mut i = 0;
    while i < s.len() {
        let next = s.get(i + 1).copied();
        match s[i] {
            '/' if next == Some('/') => {
                let end = (i..s.len()).find(|&j| s[j] == '\n').unwrap_or(s.len());
                blank(&mut out, i, end);
                i = end;
            }
            '/' if next == Some('*') => {
                let (mut j, mut depth) = (i + 2, 1);
                while j < s.len() && depth > 0 {
                    if s[j] == '/' && s.get(j + 1) == Some(&'*') {
                        depth += 1;
                        j += 1;
                    } else if s[j] == '*' && s.get(j + 1) == Some(&'/') {
                        depth -= 1;
                        j += 1;
                    }
                    j += 1;
                }
                blank(&mut out, i, j);
                i = j;
            }
            'r' if (next == Some('"') || next == Some('#'))
                && !s[..i]
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_') =>
            {
                let hashes = s[i + 1..].iter().take_while(|c| **c == '#').count();
                if s.get(i + 1 + hashes) != Some(&'"') {
                    i += 1;
                    continue;
                }
                let mut j = i + 2 + hashes;
                while j < s.len() {
                    if s[j] == '"'
                        && s[j + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|c| **c == '#')
                            .count()
                            == hashes
                    {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                blank(&mut out, i, j);
                i = j;
            }
            '"' => {
                let mut j = i + 1;
                while j < s.len() && s[j] != '"' {
                    j += if s[j] == '\\' { 2 } else { 1 };
                }
                blank(&mut out, i, j + 1);
                i = j + 1;
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{7f}'), or else a lifetime.
                let end = if next == Some('\\') {
                    (i + 2..s.len()).find(|&j| s[j] == '\'')
                } else if s.get(i + 2) == Some(&'\'') {
                    Some(i + 2)
                } else {
                    None
                };
                match end {
                    Some(end) => {
                        blank(&mut out, i, end + 1);
                        i = end + 1;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Every function with a body in `text`: (name, lines from `fn` to its closing brace).
fn functions(text: &str) -> Vec<(String, usize)> {
    let code = code_only(text);
    let line_at = |at: usize| code[..at].iter().filter(|c| **c == '\n').count();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    for at in 0..code.len().saturating_sub(3) {
        let is_fn = code[at] == 'f'
            && code[at + 1] == 'n'
            && code[at + 2].is_whitespace()
            && !(at > 0 && ident(code[at - 1]));
        if !is_fn {
            continue;
        }
        let name: String = code[at + 2..]
            .iter()
            .skip_while(|c| c.is_whitespace())
            .take_while(|c| ident(**c))
            .collect();
        if name.is_empty() {
            continue;
        }
        // The body opens at the first `{` outside the signature's brackets; a `;` there
        // first means a declaration without a body.
        let mut depth = 0i32;
        let mut open = None;
        for (j, c) in code.iter().enumerate().skip(at) {
            match c {
                '(' | '[' | '<' => depth += 1,
                ')' | ']' => depth -= 1,
                '>' if code[j - 1] != '-' && code[j - 1] != '=' => depth -= 1,
                '{' if depth <= 0 => {
                    open = Some(j);
                    break;
                }
                ';' if depth <= 0 => break,
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let mut braces = 0;
        let close = (open..code.len())
            .find(|&j| {
                match code[j] {
                    '{' => braces += 1,
                    '}' => braces -= 1,
                    _ => {}
                }
                braces == 0
            })
            .unwrap_or_else(|| panic!("fn {name}: no closing brace"));
        found.push((name, line_at(close) - line_at(at) + 1));
    }
    found
}

#[test]
fn the_brace_count_measures_what_it_should() {
    let text = "fn a() -> [u8; 2] {\n    let s = \"}}{\";\n    let c = '}';\n    // }\n    [0; 2]\n}\n\
                fn b<'x>(v: &'x str) -> impl Fn() -> usize + 'x {\n    move || v.len()\n}\n\
                trait T { fn c(&self); }\n";
    assert_eq!(
        functions(text),
        vec![("a".to_owned(), 6), ("b".to_owned(), 3)]
    );
}

#[test]
fn no_source_file_is_over_450_lines() {
    let mut over = Vec::new();
    for file in all_files() {
        let text = std::fs::read_to_string(root().join(&file)).unwrap();
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES {
            over.push(format!("{file}: {lines} lines"));
        }
    }
    assert!(
        over.is_empty(),
        "over {MAX_FILE_LINES} lines:\n{}",
        over.join("\n")
    );
}

#[test]
fn no_function_is_over_80_lines() {
    let mut over = Vec::new();
    for file in all_files() {
        let text = std::fs::read_to_string(root().join(&file)).unwrap();
        for (name, lines) in functions(&text) {
            if lines <= MAX_FN_LINES {
                continue;
            }
            over.push(format!("{file}: fn {name}, {lines} lines"));
        }
    }
    assert!(
        over.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        over.join("\n")
    );
}

#[test]
fn one_module_style_no_file_beside_its_folder() {
    let mut beside = Vec::new();
    for file in all_files() {
        let folder = file.trim_end_matches(".rs");
        if root().join(folder).is_dir() {
            beside.push(format!("{file} beside {folder}/ (make it {folder}/mod.rs)"));
        }
    }
    assert!(beside.is_empty(), "{}", beside.join("\n"));
}

/// The paths a use tree names, from just after `crate::` or `super::` in `code` at `at`:
/// `a::{b, c::d}` gives [a, b], [a, c, d].
fn use_paths(code: &[char], at: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let skip_space = |at: &mut usize| {
        while *at < code.len() && code[*at].is_whitespace() {
            *at += 1;
        }
    };
    skip_space(at);
    if code.get(*at) == Some(&'{') {
        *at += 1;
        loop {
            use_paths(code, at, prefix, out);
            skip_space(at);
            match code.get(*at) {
                Some(',') => *at += 1,
                Some('}') => {
                    *at += 1;
                    break;
                }
                _ => break,
            }
            skip_space(at);
            if code.get(*at) == Some(&'}') {
                *at += 1;
                break;
            }
        }
        return;
    }
    let start = *at;
    while *at < code.len() && (code[*at].is_alphanumeric() || code[*at] == '_') {
        *at += 1;
    }
    let name: String = code[start..*at].iter().collect();
    if name.is_empty() {
        // `*` or `self`-less glob: the prefix itself.
        out.push(prefix.to_vec());
        return;
    }
    let mut path = prefix.to_vec();
    path.push(name);
    skip_space(at);
    if code.get(*at) == Some(&':') && code.get(*at + 1) == Some(&':') {
        *at += 2;
        use_paths(code, at, &path, out);
    } else {
        out.push(path);
    }
}

/// netcopy's modules (library and binary), each with the modules it imports. A module's use
/// of its own ancestors is no arrow: a child reads its parent's items by design.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = BTreeSet::new();
    rust_files("netcopy/src", &mut files);
    let module_of = |file: &str| {
        let rel = file
            .trim_start_matches("netcopy/src/")
            .trim_end_matches(".rs");
        rel.trim_end_matches("/mod").replace('/', "::")
    };
    let mut texts = BTreeMap::new();
    for file in &files {
        let module = module_of(file);
        if module == "lib" || module == "main" || module.ends_with("tests") {
            continue;
        }
        texts.insert(module, std::fs::read_to_string(root().join(file)).unwrap());
    }
    let known = |path: &[String]| {
        (1..=path.len())
            .rev()
            .map(|k| path[..k].join("::"))
            .find(|m| texts.contains_key(m))
    };
    let mut graph = BTreeMap::new();
    for (module, text) in &texts {
        let code = code_only(text);
        let parent: Vec<String> = module.split("::").map(str::to_owned).collect();
        let parent = &parent[..parent.len() - 1];
        let mut uses = BTreeSet::new();
        for (word, base) in [("crate::", &[][..]), ("super::", parent)] {
            let word: Vec<char> = word.chars().collect();
            for at in 0..code.len().saturating_sub(word.len()) {
                let starts = code[at..].starts_with(&word)
                    && !(at > 0 && (code[at - 1].is_alphanumeric() || code[at - 1] == '_'));
                if !starts {
                    continue;
                }
                let mut paths = Vec::new();
                use_paths(&code, &mut (at + word.len()), base, &mut paths);
                uses.extend(paths.iter().filter_map(|p| known(p)));
            }
        }
        uses.retain(|u| u != module && !module.starts_with(&format!("{u}::")));
        graph.insert(module.clone(), uses);
    }
    graph
}

/// A circle through `graph`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut found = stack[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(graph, next, stack, done) {
                return Some(found);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut Vec::new(), &mut done))
}

#[test]
fn the_import_scan_sees_arrows_and_circles() {
    let code = code_only("use crate::{a::{b, c::d}, e};\nlet x = super::f::g();");
    let mut paths = Vec::new();
    use_paths(&code, &mut 11, &[], &mut paths);
    let strs = |p: &[Vec<String>]| p.iter().map(|p| p.join("::")).collect::<Vec<_>>();
    assert_eq!(strs(&paths), ["a::b", "a::c::d", "e"]);
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(x, y)| (x.to_owned(), BTreeSet::from([y.to_owned()])))
        .collect();
    assert_eq!(circle(&graph).unwrap(), ["a", "b", "c", "a"]);
    // The real graph has the arrows it must: the sweep reads experiments, rows read stats.
    let real = import_graph();
    assert!(
        real["sweep::runner"].contains("experiment"),
        "{:?}",
        real["sweep::runner"]
    );
    assert!(real["experiment::checks"].contains("workload"));
}

#[test]
fn no_import_circle() {
    let graph = import_graph();
    assert!(graph.len() > 50, "only {} modules", graph.len());
    if let Some(found) = circle(&graph) {
        panic!("an import circle: {}", found.join(" -> "));
    }
}
