//! What the engine asks of the device, counted: kernel launches (GPU dispatches, after burn's
//! fusion where it is on) and readbacks (a host↔device sync each). Unlike timings these figures do
//! not depend on the machine, so they are tracked without a GPU: natively on Mesa's lavapipe and in
//! the browser on SwiftShader, by `scripts/bench.sh gpu` and the wasm tests.
//!
//! Launches are counted only where burn runs on cubecl (WebGPU: always in the browser, natively
//! with the `gpu` feature); burn's CPU backend launches nothing and counts 0. Readbacks are counted
//! on every backend: they are the engine's own reads (`model::read_f32`, `model::read_i64`).

use std::cell::Cell;

thread_local! {
    /// Readbacks issued on this thread (the engine reads on the thread that drives it: the
    /// worker in the browser, the caller natively), so that parallel tests do not see each
    /// other's.
    static READS: Cell<u64> = const { Cell::new(0) };
}

/// Launches and readbacks since a [`Counter`] started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub launches: u64,
    pub reads: u64,
}

impl Counts {
    /// Per unit of work (`n` steps, tokens or calls), as a rate with one decimal.
    pub fn per(&self, n: usize) -> (f64, f64) {
        let n = n.max(1) as f64;
        (self.launches as f64 / n, self.reads as f64 / n)
    }
}

/// Counts kernel launches in the process and readbacks on this thread from [`Counter::start`] on.
/// One counter at a time for launches (a second replaces the first's until it drops).
pub struct Counter {
    reads_at_start: u64,
    launches: launches::Watch,
}

impl Counter {
    pub fn start() -> Self {
        Self {
            reads_at_start: READS.with(Cell::get),
            launches: launches::Watch::start(false),
        }
    }

    /// [`Counter::start`], and each kernel timed as it runs, for a profile ([`Counter::times`]):
    /// every launch then waits for its kernel, so kernels run one at a time and the whole takes
    /// longer than it would.
    pub fn start_timed() -> Self {
        Self {
            reads_at_start: READS.with(Cell::get),
            launches: launches::Watch::start(true),
        }
    }

    /// With [`Counter::start_timed`], the time taken by each kernel: name, launches, seconds in
    /// all, and whether the device's clock measured them (else the host's, around a blocking
    /// submit, which includes its overhead); most time first. Empty elsewhere.
    pub fn times(&self) -> Vec<KernelTime> {
        self.launches.times()
    }

    /// What was counted, ending the count.
    pub fn finish(self) -> Counts {
        self.read()
    }

    /// Launches so far by kernel name, most launched first (empty where nothing is counted).
    pub fn kernels(&self) -> Vec<(&'static str, u64)> {
        self.launches.kernels()
    }

    /// What was counted so far (the counter keeps counting).
    pub fn read(&self) -> Counts {
        Counts {
            launches: self.launches.count(),
            reads: READS.with(Cell::get) - self.reads_at_start,
        }
    }
}

/// One kernel's share of a profile ([`Counter::times`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelTime {
    pub kernel: &'static str,
    pub launches: u64,
    pub secs: f64,
    pub device_clock: bool,
}

/// Notes one readback (called by the engine's read functions).
pub(crate) fn note_read() {
    READS.with(|r| r.set(r.get() + 1));
}

#[cfg(feature = "webgpu")]
mod launches {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use cubecl_runtime::logging::{
        Duration, LaunchObservation, LaunchObserver, TimingMethod, TimingRequest,
    };

    use super::KernelTime;

    /// Launches in all, launches by kernel name, and with `timed` the time by kernel name
    /// (seconds, and whether every measurement came from the device's clock).
    #[derive(Default)]
    struct Tally {
        launches: AtomicU64,
        names: Mutex<HashMap<&'static str, u64>>,
        timed: bool,
        times: Mutex<HashMap<&'static str, (f64, bool)>>,
    }

    impl LaunchObserver for Tally {
        fn launched(&self, kernel: &'static str) {
            self.launches.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut names) = self.names.lock() {
                *names.entry(kernel).or_default() += 1;
            }
        }

        fn timing(&self) -> TimingRequest {
            if self.timed {
                TimingRequest::Resolved
            } else {
                TimingRequest::None
            }
        }

        fn timed(&self, kernel: &'static str, duration: Duration, method: TimingMethod) {
            if let Ok(mut times) = self.times.lock() {
                let t = times.entry(kernel).or_insert((0.0, true));
                t.0 += duration.as_secs_f64();
                t.1 &= method == TimingMethod::Device;
            }
        }
    }

    pub struct Watch {
        tally: Arc<Tally>,
        _observation: LaunchObservation,
    }

    impl Watch {
        pub fn start(timed: bool) -> Self {
            let tally = Arc::new(Tally {
                timed,
                ..Tally::default()
            });
            let observation = LaunchObservation::new(tally.clone());
            Self {
                tally,
                _observation: observation,
            }
        }

        pub fn count(&self) -> u64 {
            self.tally.launches.load(Ordering::Relaxed)
        }

        pub fn kernels(&self) -> Vec<(&'static str, u64)> {
            let mut out: Vec<_> = match self.tally.names.lock() {
                Ok(names) => names.iter().map(|(k, n)| (*k, *n)).collect(),
                Err(_) => Vec::new(),
            };
            out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            out
        }

        pub fn times(&self) -> Vec<KernelTime> {
            let names = self.kernels();
            let mut out: Vec<KernelTime> = match self.tally.times.lock() {
                Ok(times) => times
                    .iter()
                    .map(|(k, (secs, device))| KernelTime {
                        kernel: k,
                        launches: names.iter().find(|n| n.0 == *k).map_or(0, |n| n.1),
                        secs: *secs,
                        device_clock: *device,
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            out.sort_by(|a, b| b.secs.total_cmp(&a.secs).then(a.kernel.cmp(b.kernel)));
            out
        }
    }
}

#[cfg(not(feature = "webgpu"))]
mod launches {
    use super::KernelTime;

    /// Without cubecl nothing launches kernels.
    pub struct Watch;

    impl Watch {
        pub fn start(_timed: bool) -> Self {
            Watch
        }

        pub fn times(&self) -> Vec<KernelTime> {
            Vec::new()
        }

        pub fn count(&self) -> u64 {
            0
        }

        pub fn kernels(&self) -> Vec<(&'static str, u64)> {
            Vec::new()
        }
    }
}
