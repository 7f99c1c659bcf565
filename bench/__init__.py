"""`python -m bench`: the API's throughput and latency against the framework's own ceiling.

See docs/performance.md for the method and the latest figures.
"""
