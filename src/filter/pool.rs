//! The threads CEL work runs on: a blocking pool with deep stacks, shared by every engine in the
//! process (the work is pure computation; nothing in it belongs to one engine).
//!
//! The `cel` crate's parser and interpreter recurse once per level of an expression's nesting,
//! and a debug build's frames are tens of kilobytes: measured, ten nested parentheses overflow a
//! 2 MiB stack while parsing, and a chain of sixty `+` while evaluating. A tokio worker has 2 MiB
//! and an overflow aborts the process, so no CEL work runs on one. These threads also keep a slow
//! evaluation off the workers that serve requests.

use std::sync::LazyLock;

use tokio::runtime::{Builder, Runtime};

/// Each pool thread's stack. In a debug build (whose frames are the larger), the deepest
/// expressions [`super::MAX_LENGTH`] and [`super::MAX_DEPTH`] allow, parsed and run by the
/// module's tests, overflow 16 MiB and fit in 32 MiB (the parse of lists nested up to the
/// parser's own recursion limit is the deepest); 64 MiB is twice that, and a release build needs
/// a small fraction of it. The memory is reserved, not committed: only the pages a deep
/// expression touches are ever used.
pub const STACK_BYTES: usize = 64 << 20;

/// At most one thread per core: the work is CPU-bound, and more threads would only queue on
/// the cores. Idle threads end after tokio's keep-alive (10 s).
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get())
}

static POOL: LazyLock<Runtime> = LazyLock::new(|| {
    // A current-thread runtime never started: only its blocking pool is used, whose threads
    // run each task and wake the awaiting task directly, on whichever runtime it lives.
    Builder::new_current_thread()
        .thread_name("filter")
        .thread_stack_size(STACK_BYTES)
        .max_blocking_threads(threads())
        .build()
        .expect("building the filter threads' runtime")
});

/// A panic on a pool thread, with its message. The thread survives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the CEL crate panicked: {0}")]
pub struct Panicked(pub String);

/// Runs `work` on a pool thread; a panic in it (the `cel` crate panics on a few inputs) comes
/// back as [`Panicked`].
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Panicked> {
    POOL.spawn_blocking(work).await.map_err(|error| {
        if !error.is_panic() {
            return Panicked("the task was cancelled".to_owned());
        }
        let panic = error.into_panic();
        let message = panic
            .downcast_ref::<&str>()
            .map(|message| (*message).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        Panicked(message)
    })
}
