"""The cost model's parts; `benchmarks/bench_cost.py` is its entry point and user guide."""
