//! The modules form layers: no two modules depend on each other, directly or around a circle,
//! so that shared types live below the modules that exchange them (read from the sources, as
//! `crate::module` paths outside tests).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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

/// Each top-level module and the modules it names.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        let top = rel.split('/').next().unwrap().to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let entry = deps.entry(top.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && name != top {
                entry.insert(name);
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

#[test]
fn no_module_depends_on_itself_through_others() {
    let deps = dependencies();
    assert!(deps.len() > 20, "read the sources: {deps:?}");
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
    let deps = dependencies();
    for low in ["msg", "domain", "model", "screen"] {
        for high in ["collect", "app", "ui", "action", "headless"] {
            assert!(!deps[low].contains(high), "{low} must not use {high}");
        }
    }
}
