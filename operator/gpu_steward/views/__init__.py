"""Read-only views for people: ``explain`` (one workload's story) and ``top`` (GPU workloads now)."""
