"""Task array: planning, sharding, executors (loky, threads, Dask), manifest, resume."""
