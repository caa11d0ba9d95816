"""catdog.benchmarks: latency, throughput, cold start, memory and accuracy reports across artifacts and providers."""
