//! The folders of `src/` form layers: each may use only the layers below it, never one beside
//! it or above it, and inside a folder no two modules depend on each other, directly or around
//! a circle (read from the sources, as `crate::…` paths outside tests). So shared types live
//! below the code that exchanges them, and a new folder has to be given its place here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test, a bench or a generator: a failure should stop it loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every top-level module of `src/` (a folder with its root file, or a lone file) and its
/// layer: a module may use only modules of a lower layer.
const LAYERS: &[(&str, u8)] = &[
    ("util", 0),
    ("decode", 1),
    ("conn", 2),
    ("engine", 3),
    ("collect", 4),
    ("export", 4),
    ("config", 5),
    ("cli", 5),
    ("setup", 6),
    ("dashboard", 7),
    ("headless", 7),
    ("serve", 7),
    ("demo", 8),
    ("run", 9),
];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A path of module names as `crate::a::b::c` names them, cut to `depth` segments.
fn names_after(code: &str, at: usize, depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = &code[at..];
    while out.len() < depth {
        let name: String =
            rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit()).collect();
        if name.is_empty() {
            break;
        }
        rest = &rest[name.len()..];
        out.push(name);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    out
}

/// Each module, named by its path under `src/` cut to `depth` segments, and the modules (cut
/// the same way) it names.
fn dependencies(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        let parts: Vec<&str> = rel.split('/').take(depth).collect();
        if parts[0] == "main" || parts[0] == "lib" {
            continue;
        }
        let module = parts.join("::");
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let entry = deps.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let used = names_after(code, at + 7, depth).join("::");
            if !used.is_empty() && used != module && !module.starts_with(&format!("{used}::")) {
                entry.insert(used);
            }
        }
    }
    deps
}

/// A path from `from` back to `to`, if there is one.
fn path_back(deps: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_string(), vec![from.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        if at == to {
            return Some(path);
        }
        if !seen.insert(at.clone()) {
            continue;
        }
        for next in deps.get(&at).into_iter().flatten() {
            let mut p = path.clone();
            p.push(next.clone());
            stack.push((next.clone(), p));
        }
    }
    None
}

fn layer(module: &str) -> u8 {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS.iter().find(|(name, _)| *name == top).map(|(_, l)| *l).unwrap_or_else(|| {
        panic!("src/{top} has no layer: give it one in LAYERS (tests/layering.rs) and say what it may use")
    })
}

#[test]
fn every_folder_uses_only_the_layers_below_it() {
    let deps = dependencies(1);
    assert!(deps.len() >= 10, "read the sources: {deps:?}");
    for (module, uses) in &deps {
        for used in uses {
            assert!(
                layer(used) < layer(module),
                "src/{module} (layer {}) uses src/{used} (layer {}): a folder may use only the layers below it",
                layer(module),
                layer(used)
            );
        }
    }
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let deps = dependencies(2);
    assert!(deps.len() > 40, "read the sources: {deps:?}");
    for (module, uses) in &deps {
        for used in uses {
            if let Some(back) = path_back(&deps, used, module) {
                panic!("{module} -> {} forms a cycle", back.join(" -> "));
            }
        }
    }
}

#[test]
fn the_messages_and_the_model_sit_below_the_collectors_and_the_views() {
    let deps = dependencies(2);
    for low in ["engine::msg", "engine::domain", "engine::model", "dashboard::geometry"] {
        for high in ["collect", "dashboard::app", "dashboard::ui", "collect::write", "headless"] {
            let used = &deps[low];
            assert!(
                !used.iter().any(|u| u == high || u.starts_with(&format!("{high}::"))),
                "{low} must not use {high}"
            );
        }
    }
}

#[test]
fn the_layout_module_is_data_about_layouts_with_no_connection_in_it() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine/layout.rs")).unwrap();
    for word in ["crate::conn", "crate::collect", "redis::", "async fn", ".await"] {
        assert!(
            !text.contains(word),
            "src/engine/layout.rs holds '{word}': layouts are data; reading Redis belongs to collect"
        );
    }
}
