"""Benchmarks: `python -m obclip_nodes.bench NAME [args]` prints one JSON object.

Each NAME is a module obclip_nodes.bench.NAME with `run(argv) -> dict`.
"""
