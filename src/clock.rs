//! Wall-clock milliseconds, natively and in the browser (where `std::time::Instant` panics).

#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> f64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Lets the browser's event loop run at most every `every_ms` during a long computation, so that a
/// Stop (a message to the engine's worker) lands while it runs. On the CPU backend nothing in a
/// loop of model steps awaits anything real, so without this a Stop is read only at the end.
/// Natively it does nothing.
pub struct Breather {
    last: f64,
    every_ms: f64,
}

impl Breather {
    pub fn new(every_ms: f64) -> Self {
        Self {
            last: now_ms(),
            every_ms,
        }
    }

    /// Yields to the event loop if `every_ms` have passed since it last did.
    pub async fn breathe(&mut self) {
        if now_ms() - self.last >= self.every_ms {
            #[cfg(target_arch = "wasm32")]
            crate::js::yield_now().await;
            self.last = now_ms();
        }
    }
}

/// How often (ms) the prompt loops (generation, scoring a CSV) let the browser run.
pub const BREATHE_EVERY_MS: f64 = 30.0;
