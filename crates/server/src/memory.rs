//! How the process holds its memory.

/// Keeps the process's memory in small pages: no transparent huge pages, whatever the
/// system's setting.
///
/// The allocator reserves memory in large aligned regions and asks the kernel for huge pages
/// on them (`madvise(MADV_HUGEPAGE)`, honoured under the usual `madvise` setting, and under
/// `always` without asking). A huge page is 2 MiB resident from the first byte touched in it,
/// and what the allocator gives back in smaller pieces stays resident until the whole page is
/// free. Under load the resident memory was 20–30 MiB larger with them and rose in steps as the
/// kernel gathered small pages into huge ones, for no throughput gained (BENCHMARKS.md, "Huge
/// pages off"). The setting covers the whole process: its threads, and memory mapped before
/// the call.
pub fn use_small_pages() {
    // A kernel without the setting (before Linux 3.15) refuses it; nothing else to do then.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integers only and changes a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
