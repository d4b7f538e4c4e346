//! The README's violation-code table and the rule table say the same.

use crate::engine::rules::{RULES, all_codes};

/// The codes of the README's `## Violation codes` table, with their rule column.
fn readme_codes() -> Vec<(String, String)> {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("\n## Violation codes")
        .nth(1)
        .expect("README has a Violation codes section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((code.to_string(), cells.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn readme_table_equals_the_union_of_the_rules_codes() {
    let mut documented: Vec<String> = readme_codes().into_iter().map(|(c, _)| c).collect();
    documented.sort();
    documented.dedup();
    let mut known: Vec<String> = all_codes().into_iter().map(str::to_string).collect();
    known.sort();
    assert_eq!(documented, known, "README codes (left) vs the rules' codes (right)");
}

#[test]
fn each_documented_rule_reports_its_code() {
    for (code, rule) in readme_codes() {
        if rule == "any" || rule == "object" {
            continue;
        }
        let entry = RULES.iter().find(|r| r.name == rule);
        let entry = entry.unwrap_or_else(|| panic!("README names rule `{rule}` for `{code}`; no such rule"));
        assert!(
            entry.codes.contains(&code.as_str()),
            "`{code}` is not among rule `{rule}`'s codes"
        );
    }
}
