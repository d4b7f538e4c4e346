//! `check --output junit`: a test suite per file, a test case per object (failing when it fails
//! `--fail-on`), an errored test case per input error.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::CheckRun;
use crate::decision::Action;

pub fn render(run: &CheckRun) -> String {
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    for r in &run.reports {
        let mut name = format!("{} (doc {}", r.object(), r.document);
        if let Some(i) = r.item {
            let _ = write!(name, " items[{i}]");
        }
        name.push(')');
        let mut detail = String::new();
        for v in &r.violations {
            let action = if v.action == Action::Warn { "warn" } else { "deny" };
            let _ = writeln!(detail, "{action} {} {}: {}", v.code, v.path, v.message);
        }
        for f in &r.fixes {
            let _ = writeln!(detail, "fix {}: {} gets {}", f.code, f.path, f.summary);
        }
        let mut case = if run.fails(r) {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let codes: Vec<&str> = r
                .violations
                .iter()
                .map(|v| v.code)
                .chain(r.fixes.iter().map(|f| f.code))
                .collect();
            status
                .set_message(format!("{}: {}", r.decision.as_str(), codes.join(", ")))
                .set_type(r.decision.as_str())
                .set_description(detail.clone());
            TestCase::new(name, status)
        } else {
            TestCase::new(name, TestCaseStatus::success())
        };
        case.set_classname(r.file.clone());
        if !detail.is_empty() {
            case.set_system_out(detail);
        }
        suites
            .entry(r.file.as_str())
            .or_insert_with(|| TestSuite::new(r.file.clone()))
            .add_test_case(case);
    }
    for e in &run.errors {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status.set_message(e.to_string()).set_type("input error");
        let mut case = TestCase::new(format!("read {}", e.file), status);
        case.set_classname(e.file.clone());
        suites
            .entry(e.file.as_str())
            .or_insert_with(|| TestSuite::new(e.file.clone()))
            .add_test_case(case);
    }
    let mut report = Report::new("gpu-admission check");
    report.add_test_suites(suites.into_values());
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot render JUnit XML: {e} -->\n"))
}
