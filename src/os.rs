//! What signpost asks of the operating system: reading input files
//! safely, the allocator's behaviour, the open-files limit, the TLS
//! provider and the host's name. The ground floor: it uses no other room.

/// Reads a whole input file (configuration, zone, GeoIP database,
/// state), refusing what is not a regular file: a device such as
/// `/dev/zero` would never end and a FIFO would block the reader.
pub fn read_input(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    std::fs::read(path)
}

/// The host's name (`gethostname`), if it has one in UTF-8.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end]).ok().map(str::to_string)
}

/// [`read_input`] for text.
pub fn read_input_text(path: &std::path::Path) -> std::io::Result<String> {
    String::from_utf8(read_input(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Hands memory freed by a large drop (a replaced configuration, a GeoIP
/// compile's scratch space) back to the system. glibc's allocator keeps
/// freed memory of its per-thread arenas otherwise, and a reload with a new
/// GeoIP database would leave its peak in the resident set for good
/// (docs/performance.md). Call it off the answer path: it walks the heap.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Large allocations (1 MiB and more: a GeoIP table's arrays, a compile's
/// scratch) get pages of their own, which go back to the system when they
/// are freed. glibc otherwise raises this threshold after each such free
/// (up to 32 MiB), after which a GeoIP recompile's big arrays come from
/// the heap, interleave with long-lived data and stay resident after the
/// old table is dropped (docs/performance.md, "Soak"). Only the control
/// plane makes allocations this large.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Raises the soft open-files limit to the hard limit (at most 1 M);
/// returns the soft limit in force.
pub fn raise_nofile_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `rl`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        let want = rl.rlim_max.min(1 << 20);
        if rl.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                tracing::debug!("open-files limit raised from {} to {want}", rl.rlim_cur);
                rl.rlim_cur = want;
            } else {
                tracing::warn!(
                    "cannot raise the open-files limit from {} to {want}",
                    rl.rlim_cur
                );
            }
        }
    }
    rl.rlim_cur
}

/// Installs the process-wide TLS crypto provider (ring) for the HTTPS
/// health checks; harmless when called twice.
pub fn init_tls() {
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
}
