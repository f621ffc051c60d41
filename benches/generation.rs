//! The configuration generation pointer every request loads (`server::gateway::Gateway::runtime`):
//! `RwLock<Arc<_>>` (read lock, clone, unlock; what it was) against `ArcSwap<_>::load_full` (what
//! it is), alone and while a second thread loads the same pointer without pause, as the other
//! proxy worker does under load. The returned `Arc` is dropped inside the measured loop, as a
//! request drops it when it ends.

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;

/// Stands in for `Runtime`: only the pointer is measured.
struct Generation {
    _number: u64,
}

fn with_rwlock(lock: &RwLock<Arc<Generation>>) -> Arc<Generation> {
    match lock.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn with_arc_swap(swap: &ArcSwap<Generation>) -> Arc<Generation> {
    swap.load_full()
}

/// Run `load` on another thread until the returned guard is dropped.
struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Background {
    fn start(load: impl Fn() + Send + 'static) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                load();
            }
        });
        Background {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn generation(c: &mut Criterion) {
    let lock = Arc::new(RwLock::new(Arc::new(Generation { _number: 1 })));
    let swap = Arc::new(ArcSwap::from_pointee(Generation { _number: 1 }));
    let mut group = c.benchmark_group("generation");
    for contended in [false, true] {
        let label = if contended {
            "two_threads"
        } else {
            "one_thread"
        };
        {
            let other = lock.clone();
            let _background =
                contended.then(|| Background::start(move || drop(black_box(with_rwlock(&other)))));
            group.bench_function(BenchmarkId::new("rwlock_arc", label), |b| {
                b.iter(|| drop(black_box(with_rwlock(&lock))))
            });
        }
        {
            let other = swap.clone();
            let _background = contended
                .then(|| Background::start(move || drop(black_box(with_arc_swap(&other)))));
            group.bench_function(BenchmarkId::new("arc_swap", label), |b| {
                b.iter(|| drop(black_box(with_arc_swap(&swap))))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = generation
}
criterion_main!(benches);
