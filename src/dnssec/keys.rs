//! BIND key files (placeholder; being written).
