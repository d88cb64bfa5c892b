//! The report's sections are written once, as markdown (report.md); report.html reads the same
//! text back as blocks (headings, paragraphs, lists, tables) whose spans the template escapes,
//! so the two reports never say different things. Only the subset report.md uses is read:
//! `#` headings, `- ` items (and their indented continuation lines), `|` tables, `**strong**`
//! and `` `code` `` spans.

use serde::Serialize;

/// A run of text, plain, strong or code.
#[derive(Debug, PartialEq, Serialize)]
pub struct Span {
    pub kind: &'static str,
    pub text: String,
}

/// The spans of one line of markdown.
pub type Line = Vec<Span>;

#[derive(Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    Heading {
        level: usize,
        spans: Line,
    },
    Paragraph {
        spans: Line,
    },
    List {
        items: Vec<Line>,
    },
    Table {
        head: Vec<Line>,
        rows: Vec<Vec<Line>>,
    },
}

/// `text`'s spans: `**` and `` ` `` open and close strong and code runs (nothing inside code is
/// read as markup).
pub fn spans(text: &str) -> Line {
    let mut out: Line = Vec::new();
    let mut kind = "text";
    let mut run = String::new();
    let mut rest = text;
    let mut flush = |run: &mut String, kind: &'static str| {
        if !run.is_empty() {
            out.push(Span {
                kind,
                text: std::mem::take(run),
            });
        }
    };
    while let Some(c) = rest.chars().next() {
        let (toggle, len) = match (kind, c) {
            ("code", '`') => (Some("text"), 1),
            ("code", _) => (None, c.len_utf8()),
            (_, '`') => (Some("code"), 1),
            ("strong", '*') if rest.starts_with("**") => (Some("text"), 2),
            (_, '*') if rest.starts_with("**") => (Some("strong"), 2),
            _ => (None, c.len_utf8()),
        };
        match toggle {
            Some(next) => {
                flush(&mut run, kind);
                // Back to the enclosing kind: code inside strong ends as text, like markdown.
                kind = next;
            }
            None => run.push_str(&rest[..len]),
        }
        rest = &rest[len..];
    }
    flush(&mut run, kind);
    out
}

fn cells(line: &str) -> Vec<Line> {
    line.trim()
        .trim_start_matches('|')
        .trim_end_matches('|')
        .split('|')
        .map(|c| spans(c.trim()))
        .collect()
}

/// Reads report.md's markdown back as blocks; image lines are left out (the HTML inlines the
/// plots itself).
pub fn parse(markdown: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    // Whether the last block may take the next line (no blank line came between).
    let mut open = false;
    for line in markdown.lines() {
        if line.trim().is_empty() || line.starts_with("![") {
            open = false;
            continue;
        }
        let last = blocks.last_mut().filter(|_| open);
        match (line, last) {
            (l, _) if l.starts_with('#') => {
                let level = l.chars().take_while(|c| *c == '#').count();
                let spans = spans(l[level..].trim());
                blocks.push(Block::Heading { level, spans });
                open = false;
                continue;
            }
            (l, Some(Block::Table { rows, .. })) if l.starts_with('|') => {
                if !l.starts_with("|---") {
                    rows.push(cells(l));
                }
            }
            (l, _) if l.starts_with('|') => blocks.push(Block::Table {
                head: cells(l),
                rows: Vec::new(),
            }),
            (l, Some(Block::List { items })) if l.starts_with("- ") => items.push(spans(&l[2..])),
            (l, _) if l.starts_with("- ") => blocks.push(Block::List {
                items: vec![spans(&l[2..])],
            }),
            (l, Some(Block::List { items })) if l.starts_with("  ") => {
                if let Some(item) = items.last_mut() {
                    item.push(Span {
                        kind: "text",
                        text: " ".to_owned(),
                    });
                    item.extend(spans(l.trim()));
                }
            }
            (l, Some(Block::Paragraph { spans: p })) => {
                p.push(Span {
                    kind: "text",
                    text: " ".to_owned(),
                });
                p.extend(spans(l.trim()));
            }
            (l, _) => blocks.push(Block::Paragraph {
                spans: spans(l.trim()),
            }),
        }
        open = true;
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(kind: &'static str, text: &str) -> Span {
        Span {
            kind,
            text: text.to_owned(),
        }
    }

    #[test]
    fn spans_read_strong_and_code_and_keep_everything_else() {
        assert_eq!(
            spans("Of 3, **2 (67 %)** ran `a<b> ** c` & done"),
            vec![
                s("text", "Of 3, "),
                s("strong", "2 (67 %)"),
                s("text", " ran "),
                s("code", "a<b> ** c"),
                s("text", " & done"),
            ]
        );
    }

    #[test]
    fn blocks_of_report_markdown() {
        let md = "# Title\n\nline one\nline two\n\n- item **a**\n  more\n- item b\n\n| m | x |\n|---|---|\n| a1 | 1.00 |\n\n![p](plots/p.png)\n";
        assert_eq!(
            parse(md),
            vec![
                Block::Heading {
                    level: 1,
                    spans: vec![s("text", "Title")]
                },
                Block::Paragraph {
                    spans: vec![s("text", "line one"), s("text", " "), s("text", "line two")]
                },
                Block::List {
                    items: vec![
                        vec![
                            s("text", "item "),
                            s("strong", "a"),
                            s("text", " "),
                            s("text", "more")
                        ],
                        vec![s("text", "item b")]
                    ]
                },
                Block::Table {
                    head: vec![vec![s("text", "m")], vec![s("text", "x")]],
                    rows: vec![vec![vec![s("text", "a1")], vec![s("text", "1.00")]]]
                },
            ]
        );
    }
}
