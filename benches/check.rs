//! Parse + lower + check of generated runbooks, the workload of `bench/check.sh`: a
//! 2-wide DAG of N no-op shell steps where each step runs after 1–3 earlier ones.

use runbook::check::check_path;
use runbook::syntax::source::SourceMap;

fn main() {
    divan::main();
}

/// The same DAG as `../shared/bench/runbook_workloads.py dag N`.
fn workload(n: usize) -> String {
    let deps = |i: usize| -> Vec<usize> {
        if i == n - 1 && n >= 3 {
            return vec![i - 1, i - 2];
        }
        let k = 1 + i % 3;
        [2usize, 3, 4]
            .iter()
            .take(k)
            .filter(|d| i >= **d)
            .map(|d| i - d)
            .collect()
    };
    let mut out = format!("runbook bench_dag_{n} {{\n  phase p {{\n");
    for i in 0..n {
        let d = deps(i);
        let after = if d.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = d.iter().map(|x| format!("s{x}")).collect();
            format!(" after {}", names.join(", "))
        };
        out.push_str(&format!("    step s{i}{after} {{ sh \"true\" }}\n"));
    }
    out.push_str("  }\n}\n");
    out
}

#[divan::bench(args = [100, 1_000, 10_000])]
fn check(bencher: divan::Bencher, n: usize) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("bench.runbook");
    std::fs::write(&path, workload(n)).expect("write the workload");
    bencher.bench(|| {
        let mut map = SourceMap::new();
        let outcome = check_path(&mut map, &path).expect("readable");
        assert!(!outcome.has_errors());
        outcome
    });
}
