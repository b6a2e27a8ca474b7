"""What is measured: the Case, its registries and plugins, inputs, outputs,
the fp64 reference and the cache keys that identify them."""
