"""Local ComfyUI hosts for the demo, the benchmarks and the tests: find the host tree, generate
the embedded smoke models, start and stop real servers on loopback. Not used by the nodes."""
