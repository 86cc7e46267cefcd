//! Repository rules, checked as ordinary tests.

use std::fs;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read_toml(path: &Path) -> Table {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every member manifest: (directory, parsed manifest).
fn members() -> Vec<(PathBuf, Table)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("Cargo.toml").exists() {
            out.push((dir.clone(), read_toml(&dir.join("Cargo.toml"))));
        }
    }
    for extra in ["xtask", "tests"] {
        let dir = root().join(extra);
        out.push((dir.clone(), read_toml(&dir.join("Cargo.toml"))));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn package(manifest: &Table) -> &Table {
    manifest["package"].as_table().unwrap()
}

fn name(manifest: &Table) -> &str {
    package(manifest)["name"].as_str().unwrap()
}

fn is_published(manifest: &Table) -> bool {
    package(manifest).get("publish").and_then(Value::as_bool) != Some(false)
}

fn deps<'a>(manifest: &'a Table, section: &str) -> Vec<(&'a String, &'a Value)> {
    manifest
        .get(section)
        .and_then(Value::as_table)
        .map(|t| t.iter().collect())
        .unwrap_or_default()
}

#[test]
fn every_crate_of_the_crate_map_exists() {
    let names: Vec<_> = members().iter().map(|(_, m)| name(m).to_owned()).collect();
    for expected in [
        "tta-core",
        "tta-apm",
        "tta-timeout",
        "tta-cache",
        "tta-router",
        "tta-llm",
        "tta-limit",
        "tta-gateway",
        "tta-observability-integration",
        "tta-demo",
        "tta-benches",
        "xtask",
        "tta-tests",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing crate {expected}"
        );
    }
}

#[test]
fn published_crates_have_complete_metadata_readme_and_changelog() {
    for (dir, manifest) in members().iter().filter(|(_, m)| is_published(m)) {
        let pkg = package(manifest);
        for key in [
            "description",
            "license",
            "repository",
            "readme",
            "rust-version",
            "version",
            "edition",
        ] {
            assert!(
                pkg.contains_key(key),
                "{}: [package] has no {key}",
                name(manifest)
            );
        }
        assert!(
            dir.join("README.md").exists(),
            "{}: no README.md",
            name(manifest)
        );
        assert!(
            dir.join("CHANGELOG.md").exists(),
            "{}: no CHANGELOG.md",
            name(manifest)
        );
    }
}

#[test]
fn every_crate_uses_the_workspace_lints() {
    for (_, manifest) in members() {
        let lints = manifest.get("lints").and_then(Value::as_table);
        assert_eq!(
            lints
                .and_then(|l| l.get("workspace"))
                .and_then(Value::as_bool),
            Some(true),
            "{}: needs [lints] workspace = true",
            name(&manifest)
        );
    }
}

#[test]
fn every_dependency_comes_from_the_workspace_table() {
    for (_, manifest) in members() {
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            for (dep, spec) in deps(&manifest, section) {
                let from_workspace = spec
                    .as_table()
                    .and_then(|t| t.get("workspace"))
                    .and_then(Value::as_bool)
                    == Some(true);
                let internal_path = spec.as_table().is_some_and(|t| t.contains_key("path"));
                assert!(
                    from_workspace || internal_path,
                    "{}: {section}.{dep} must use `workspace = true` (one version per dependency)",
                    name(&manifest)
                );
            }
        }
    }
}

#[test]
fn internal_dependencies_carry_a_version_and_dev_dependencies_do_not() {
    let workspace = read_toml(&root().join("Cargo.toml"));
    let ws_deps = workspace["workspace"]["dependencies"].as_table().unwrap();
    for (dep, spec) in ws_deps.iter().filter(|(d, _)| d.starts_with("tta-")) {
        let t = spec.as_table().unwrap();
        assert!(
            t.contains_key("path") && t.contains_key("version"),
            "workspace dependency {dep} needs path and version"
        );
    }
    for (_, manifest) in members() {
        for (dep, spec) in deps(&manifest, "dev-dependencies") {
            if dep.starts_with("tta-") {
                let t = spec.as_table().unwrap();
                assert!(
                    !t.contains_key("version") && t.get("workspace").is_none(),
                    "{}: dev-dependency {dep} must be a bare path (a version breaks cargo publish --workspace)",
                    name(&manifest)
                );
            }
        }
    }
}

#[test]
fn opentelemetry_crates_share_one_version() {
    let workspace = read_toml(&root().join("Cargo.toml"));
    let ws_deps = workspace["workspace"]["dependencies"].as_table().unwrap();
    let versions: Vec<_> = ws_deps
        .iter()
        .filter(|(d, _)| d.starts_with("opentelemetry"))
        .map(|(d, spec)| (d, spec["version"].as_str().unwrap().to_owned()))
        .collect();
    assert!(!versions.is_empty());
    assert!(
        versions.iter().all(|(_, v)| *v == versions[0].1),
        "OpenTelemetry crates must move together: {versions:?}"
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_placeholders_ignored_tests_or_unexplained_allows() {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "tests"] {
        rust_files(&root().join(dir), &mut files);
    }
    // Built at run time so this file does not flag itself.
    let banned = [
        ["todo", "!("].concat(),
        ["unimplemented", "!("].concat(),
        ["#[", "ignore]"].concat(),
        ["dbg", "!("].concat(),
    ];
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            for b in &banned {
                assert!(
                    !line.contains(b.as_str()),
                    "{}:{}: {b}",
                    file.display(),
                    n + 1
                );
            }
            if line.contains("allow(") && line.trim_start().starts_with('#') {
                // The attribute may wrap: read it up to its closing bracket.
                let end = lines[n..]
                    .iter()
                    .position(|l| l.trim_end().ends_with(']'))
                    .unwrap_or(0);
                let attribute = lines[n..=n + end].join(" ");
                assert!(
                    attribute.contains("reason"),
                    "{}:{}: an allow needs a reason",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}

#[test]
fn readme_opens_with_the_two_commands() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let head: String = readme.lines().take(20).collect::<Vec<_>>().join("\n");
    assert!(
        head.contains("cargo run --release -p tta-demo"),
        "README must open with the demo command"
    );
    assert!(
        head.contains("cargo xtask ci"),
        "README must open with the test command"
    );
    let ci = fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.contains("cargo xtask ci"));
}

#[test]
fn the_coverage_gate_is_at_least_eighty_percent() {
    let raw = fs::read_to_string(root().join("xtask/coverage-threshold")).unwrap();
    let gate: f64 = raw.trim().parse().unwrap();
    assert!(gate >= 80.0, "coverage gate {gate} is below 80");
}
