//! Where the resident memory is: with `BENCH_SAMPLE_HEAP` set, the bytes the program holds
//! (counted by the allocator) beside the kernel's figures, printed every second.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// mimalloc, counting the bytes allocated and not yet freed while [`COUNTING`] is on (from the
/// start of the program's `main`).
pub struct Counting;

fn count(bytes: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(bytes, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

/// With `BENCH_SAMPLE_HEAP`, counts from now on (call it first) and prints every second: the
/// resident memory, its anonymous part and how much of that is in huge pages, and the heap
/// bytes held.
pub fn sample_every_second() {
    if std::env::var_os("BENCH_SAMPLE_HEAP").is_none() {
        return;
    }
    COUNTING.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
            eprintln!(
                "{:>4} s: resident {} MiB, anonymous {} MiB (huge pages {} MiB); heap held {} MiB",
                started.elapsed().as_secs(),
                super::kib_field(&rollup, "Rss:") / 1024,
                super::kib_field(&rollup, "Anonymous:") / 1024,
                super::kib_field(&rollup, "AnonHugePages:") / 1024,
                LIVE.load(Ordering::Relaxed) >> 20,
            );
        }
    });
}
