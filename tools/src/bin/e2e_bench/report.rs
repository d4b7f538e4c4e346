//! Part of the e2e benchmark (tools/src/bin/e2e_bench/main.rs).

#[allow(unused_imports)]
use super::*;

// === the report ===

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub(crate) fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.3}"))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn report(
    args: &Args,
    setups: &[Setup],
    runs: &[Run],
    sanity_rows: &[String],
    problems: &[String],
    hz: f64,
    versions: &[String; 3],
    load_start: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## End to end through kube-apiserver\n");
    let _ = writeln!(
        s,
        "Machine: {}; load average at start {load_start}, at end {}.  ",
        machine(),
        loadavg()
    );
    let _ = writeln!(s, "Versions: {}; {}; {}.  ", versions[0], versions[1], versions[2]);
    let loads: Vec<String> = args.loads.iter().map(Load::to_string).collect();
    let _ = writeln!(
        s,
        "Load: {} rounds (per load, the set-ups back to back, their order rotated) x {} set-ups x loads [{}]; per run {} warm-up + {} measured \
         ({} at a fixed rate) dry-run creates of a GPU pod in `{NS}`, one {} connection per client.\n",
        args.rounds,
        setups.len(),
        loads.join("; "),
        args.warmup,
        args.requests,
        args.paced_requests,
        if args.http1 { "HTTP/1.1" } else { "HTTP/2" }
    );

    let of = |load: Load, setup: Setup| -> Vec<&Run> {
        runs.iter().filter(|r| r.load == load && r.setup == setup).collect()
    };
    for &load in &args.loads {
        let base = of(load, Setup::None);
        // Per round: this set-up's figure against the same round's baseline, then the median.
        let paired = |setup: Setup, f: &dyn Fn(&Run) -> f64, ratio: bool| -> f64 {
            let v = of(load, setup)
                .iter()
                .filter_map(|r| {
                    let b = base.iter().find(|b| b.round == r.round)?;
                    Some(if ratio { f(r) / f(b) } else { f(r) - f(b) })
                })
                .collect();
            median(v)
        };
        let _ = writeln!(s, "### {load} (medians of {} rounds)\n", args.rounds);
        let _ = writeln!(
            s,
            "| set-up | p50 ms | p99 ms | req/s | p50 overhead | p99 overhead | API server CPU ms/req | webhook CPU ms/req |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for &setup in setups {
            let rs = of(load, setup);
            let m = |f: &dyn Fn(&Run) -> f64| median(rs.iter().map(|r| f(r)).collect());
            let overhead = |q: f64| {
                if setup == Setup::None {
                    "-".to_string()
                } else {
                    format!(
                        "{:+.2} ms (x{:.2})",
                        paired(setup, &|r| r.p(q), false),
                        paired(setup, &|r| r.p(q), true)
                    )
                }
            };
            let _ = writeln!(
                s,
                "| {} | {:.2} | {:.2} | {:.0} | {} | {} | {:.3} | {} |",
                setup.name(),
                m(&|r| r.p(0.5)),
                m(&|r| r.p(0.99)),
                m(&|r| r.rps()),
                overhead(0.5),
                overhead(0.99),
                m(&|r| r.cpu_per_req(r.cpu.apiserver, hz)),
                match setup {
                    Setup::Webhook => format!("{:.3}", m(&|r| r.cpu_per_req(r.cpu.webhook, hz))),
                    Setup::Floor => format!("{:.3}", m(&|r| r.cpu_per_req(r.cpu.floor, hz))),
                    _ => "-".into(),
                }
            );
        }
        let diff = paired(Setup::Webhook, &|r| r.p(0.99), false) - paired(Setup::Vap, &|r| r.p(0.99), false);
        let _ = writeln!(
            s,
            "\np99 overhead of gpu-admission minus that of the CEL policy: {diff:+.2} ms (target <= 1 ms: {}).\n",
            if diff <= 1.0 { "met" } else { "NOT met" }
        );
        if setups.contains(&Setup::Floor) {
            let _ = writeln!(
                s,
                "gpu-admission's overhead minus that of the floor webhook: p50 {:+.2} ms, p99 {:+.2} ms.\n",
                paired(Setup::Webhook, &|r| r.p(0.5), false) - paired(Setup::Floor, &|r| r.p(0.5), false),
                paired(Setup::Webhook, &|r| r.p(0.99), false) - paired(Setup::Floor, &|r| r.p(0.99), false),
            );
        }
    }

    let _ = writeln!(
        s,
        "### Where the time goes (means from kube-apiserver's and gpu-admission's own histograms; medians of rounds)\n"
    );
    let _ = writeln!(
        s,
        "| load | set-up | POST pods (API server) ms | VAP plugin ms | mutating webhook plugin ms | validating webhook plugin ms | API server -> /mutate ms | API server -> /validate ms | gpu-admission /mutate ms | gpu-admission /validate ms | connections to gpu-admission: most at once / opened | etcd CPU ms/req | client CPU ms/req |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &load in &args.loads {
        for &setup in setups {
            let rs = of(load, setup);
            let m = |f: &dyn Fn(&Run) -> Option<f64>| -> Option<f64> {
                let v: Vec<f64> = rs.iter().filter_map(|r| f(r)).collect();
                (!v.is_empty()).then(|| median(v))
            };
            let _ = writeln!(
                s,
                "| {load} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.3} |",
                setup.name(),
                opt(m(&|r| mean_ms(r.after.request, r.before.request))),
                opt(m(&|r| mean_ms(r.after.plugins[0], r.before.plugins[0]))),
                opt(m(&|r| mean_ms(r.after.plugins[1], r.before.plugins[1]))),
                opt(m(&|r| mean_ms(r.after.plugins[2], r.before.plugins[2]))),
                opt(m(&|r| mean_ms(r.after.webhooks[0], r.before.webhooks[0]))),
                opt(m(&|r| mean_ms(r.after.webhooks[1], r.before.webhooks[1]))),
                opt(m(&|r| mean_ms(r.after.served[0], r.before.served[0]))),
                opt(m(&|r| mean_ms(r.after.served[1], r.before.served[1]))),
                if matches!(setup, Setup::Webhook | Setup::Floor) {
                    format!(
                        "{:.0} / {:.0}",
                        m(&|r| Some(r.max_webhook_conns as f64)).unwrap_or(0.0),
                        m(&|r| Some(r.new_webhook_conns as f64)).unwrap_or(0.0)
                    )
                } else {
                    "-".into()
                },
                median(rs.iter().map(|r| r.cpu_per_req(r.cpu.etcd, hz)).collect()),
                median(rs.iter().map(|r| r.cpu_per_req(r.cpu.client, hz)).collect()),
            );
        }
    }

    let _ = writeln!(s, "\n### Every run\n");
    let _ = writeln!(
        s,
        "| round | load | set-up | ok | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | webhook calls (m/v) |"
    );
    let _ = writeln!(s, "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in runs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0}/{:.0} |",
            r.round,
            r.load,
            r.setup.name(),
            r.ok,
            r.errors,
            r.rps(),
            r.p(0.5),
            r.p(0.9),
            r.p(0.99),
            r.latency.max() as f64 / 1e3,
            r.webhook_calls(0),
            r.webhook_calls(1),
        );
    }

    let _ = writeln!(
        s,
        "\n### Each set-up enforces what it should (checked before measuring)\n"
    );
    let _ = writeln!(s, "| set-up | request | expected | got |");
    let _ = writeln!(s, "|---|---|---|---|");
    for row in sanity_rows {
        let _ = writeln!(s, "{row}");
    }
    if problems.is_empty() {
        let _ = writeln!(
            s,
            "\nEvery run: no errors; gpu-admission reviewed every request of set-up 3 and none of the others; \
             the API server called both pod webhooks once per request in set-ups 3 and 4 and never in 1 and 2; \
             after each run the set-up still denied (2, 3) or admitted (1, 4) a pod mounting `/`."
        );
    } else {
        let _ = writeln!(s, "\n### PROBLEMS\n");
        for p in problems {
            let _ = writeln!(s, "- {p}");
        }
    }
    s
}
