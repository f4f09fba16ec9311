//! Data flows one way: no import circle among the modules of agent/src, shadow/src or
//! probes/src. A module's edges are the `crate::…` and `super::…` paths of its non-test
//! code, resolved to the longest module they name; a circle is a strongly connected
//! component of that graph with more than one module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every module of a crate's src/ and its non-test source text.
fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Module = rel.iter().map(|p| p.to_string_lossy().into()).collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            // A sibling tests.rs (declared under #[cfg(test)]) is test code.
            if module.last().is_some_and(|m| m == "tests") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(cut) => text[..cut].to_string(),
                None => text,
            };
            let code: String = code
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(module, code);
        }
    }
    out
}

/// The modules that `code`, the text of `module`, refers to.
fn edges(module: &Module, code: &str, known: &BTreeMap<Module, String>) -> BTreeSet<Module> {
    let mut out = BTreeSet::new();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    for (at, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        if at > 0 && code[..at].ends_with(|c: char| ident(c) || c == ':') {
            continue; // the inner part of super::super:: or a longer path
        }
        let rest = &code[at..];
        let (base, tail) = match rest.strip_prefix("crate::") {
            Some(tail) => (Vec::new(), tail),
            None => {
                // `module` is a file's or a mod.rs's own path: super:: is its parent.
                let mut base = module.clone();
                let mut tail = rest;
                while let Some(next) = tail.strip_prefix("super::") {
                    base.pop();
                    tail = next;
                }
                (base, tail)
            }
        };
        // The path's identifiers up to a brace group, `;`, whitespace or a non-path char;
        // a brace group adds each member's path.
        let head: String = tail.chars().take_while(|&c| ident(c) || c == ':').collect();
        let mut parts: Vec<String> = head
            .split("::")
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        let mut candidates = vec![];
        if tail[head.len()..].starts_with('{') {
            let inner = &tail[head.len() + 1..tail.find('}').unwrap_or(tail.len())];
            for member in inner.split(',') {
                let path: String = member
                    .trim()
                    .chars()
                    .take_while(|&c| ident(c) || c == ':')
                    .collect();
                let mut p = parts.clone();
                p.extend(path.split("::").filter(|x| !x.is_empty()).map(String::from));
                candidates.push(p);
            }
        }
        candidates.push(std::mem::take(&mut parts));
        for path in candidates {
            let full: Module = base.iter().cloned().chain(path).collect();
            if let Some(target) = (1..=full.len())
                .rev()
                .map(|n| full[..n].to_vec())
                .find(|m| known.contains_key(m))
            {
                let is_ancestor = target.len() < module.len() && module.starts_with(&target);
                if &target != module && !is_ancestor {
                    out.insert(target);
                }
            }
        }
    }
    out
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        for w in &s.graph[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                s.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                s.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = vec![];
            while let Some(w) = s.stack.pop() {
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        found: vec![],
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

fn graph_of(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let known = modules(src);
    known
        .iter()
        .map(|(m, code)| (m.clone(), edges(m, code, &known)))
        .collect()
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

#[test]
fn no_import_circle_in_any_crate() {
    for name in ["agent", "shadow", "probes"] {
        let graph = graph_of(&crate_src(name));
        assert!(
            graph.len() > 5,
            "{name}/src: only {} modules found",
            graph.len()
        );
        let found = circles(&graph);
        let shown: Vec<String> = found
            .iter()
            .map(|c| {
                c.iter()
                    .map(|m| m.join("::"))
                    .collect::<Vec<_>>()
                    .join(" <-> ")
            })
            .collect();
        assert!(
            found.is_empty(),
            "{name}/src has import circles: {shown:#?}"
        );
    }
}

/// The checker finds a circle when there is one (so the test above can fail).
#[test]
fn a_planted_circle_is_found() {
    let dir = std::env::temp_dir().join(format!("skewscope-module-graph-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("model")).unwrap();
    std::fs::write(
        dir.join("lib.rs"),
        "pub mod model;\npub mod snapshot;\npub mod leaf;\n",
    )
    .unwrap();
    std::fs::write(dir.join("model/mod.rs"), "pub mod window;\n").unwrap();
    std::fs::write(
        dir.join("model/window.rs"),
        "use crate::snapshot::Snapshot;\nuse crate::leaf::f;\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("snapshot.rs"),
        "use crate::{leaf, model::window::Window};\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("leaf.rs"),
        "#[cfg(test)]\nmod t { use crate::snapshot::S; }\n",
    )
    .unwrap();
    let found = circles(&graph_of(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let mut names: Vec<String> = found[0].iter().map(|m| m.join("::")).collect();
    names.sort();
    assert_eq!(names, ["model::window", "snapshot"]);
}
