//! Criterion micro-benchmarks of block assembly on the embedded store, warm caches: every
//! block assembled and encoded (answer cache off), and a repeat call served from the answer
//! cache. `cargo bench -p sendtime-bench`; the test command builds and runs each once (not
//! timed: figures come from `cargo bench` and `scripts/bench.sh`).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sendtime_domain::BlockKind;

const CYCLE: usize = 2_000;

fn assembly(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the benchmark");
    for (label, answer_cache) in [("assemble", false), ("repeat", true)] {
        let service = sendtime_bench::service(answer_cache);
        // Warm every cache (and the answer cache) over the users the benchmark cycles through.
        runtime.block_on(async {
            for kind in BlockKind::ALL {
                for n in 0..CYCLE {
                    let _ = service
                        .answer(kind, &sendtime_bench::user(n, CYCLE), 4)
                        .await;
                }
            }
        });
        let mut group = c.benchmark_group(label);
        for kind in BlockKind::ALL {
            let users: Vec<_> = (0..CYCLE).map(|n| sendtime_bench::user(n, CYCLE)).collect();
            let mut next = 0;
            group.bench_function(kind.as_str(), |b| {
                b.iter(|| {
                    next = (next + 1) % users.len();
                    let answer = runtime.block_on(service.answer(kind, &users[next], 4));
                    black_box(answer.json.len())
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, assembly);
criterion_main!(benches);
