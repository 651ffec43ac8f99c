//! No function in `src/` is longer than a screen: past [`MAX_LINES`] a function is doing several
//! things, and each deserves a name. The pickle machine's opcode dispatch is the one exception: a
//! table of opcodes reads best as one `match`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failure should stop it loudly

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 100;
/// (file, function) that may be longer.
const EXCEPTIONS: &[(&str, &str)] = &[("decode/pickle.rs", "step")];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The line with its string and character literals and its comment blanked, so that only the
/// code's own braces are left.
fn code_of(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => break,
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                out.push_str("\"\"");
            }
            // A character literal ('{', '\''), not a lifetime ('a).
            '\'' if chars.get(i + 2) == Some(&'\'') => {
                i += 2;
                out.push_str("''");
            }
            '\'' if chars.get(i + 1) == Some(&'\\') => {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                out.push_str("''");
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The name of the function a line begins, if it begins one.
fn function_name(line: &str) -> Option<String> {
    let mut words = line.split_whitespace().peekable();
    while let Some(w) = words.peek() {
        if *w == "pub" || w.starts_with("pub(") || ["async", "const", "unsafe", "extern"].contains(w) {
            words.next();
        } else {
            break;
        }
    }
    if words.next()? != "fn" {
        return None;
    }
    let name: String = words.next()?.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

/// Every function of a file outside its tests: its name, first line and length in lines.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let lines: Vec<String> = code.lines().map(code_of).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(name) = function_name(&lines[i]) else {
            i += 1;
            continue;
        };
        let (mut depth, mut opened, mut end) = (0i64, false, None);
        for (j, line) in lines.iter().enumerate().skip(i) {
            if !opened && line.trim_end().ends_with(';') && !line.contains('{') {
                break; // a declaration without a body
            }
            for c in line.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth == 0 {
                end = Some(j);
                break;
            }
        }
        match end {
            Some(end) => {
                out.push((name, i + 1, end - i + 1));
                i = end + 1;
            }
            None => i += 1,
        }
    }
    out
}

#[test]
fn no_function_is_longer_than_a_screen() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut counted = 0;
    let mut long = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap().to_string_lossy().to_string();
        for (name, line, length) in functions(&std::fs::read_to_string(&file).unwrap()) {
            counted += 1;
            if length > MAX_LINES && !EXCEPTIONS.contains(&(rel.as_str(), name.as_str())) {
                long.push(format!("src/{rel}:{line} {name} is {length} lines"));
            }
        }
    }
    assert!(counted > 500, "read the sources: {counted} functions");
    assert!(long.is_empty(), "longer than {MAX_LINES} lines:\n{}", long.join("\n"));
}

#[test]
fn the_reader_sees_functions_as_they_are() {
    let text = "pub(crate) async fn a(x: &str) -> Result<(), ()> {\n    let b = '{';\n    let s = \"}\";\n    // }\n    if x.is_empty() {\n        return Ok(());\n    }\n    Ok(())\n}\nfn decl();\nfn c<'a>(x: &'a str) {\n}\n";
    assert_eq!(functions(text), vec![("a".to_string(), 1, 9), ("c".to_string(), 11, 2)]);
}
