"""Local ComfyUI hosts for the demo, the benchmarks and the tests: find the host tree, generate
the test models (published architectures, random weights), start and stop real servers on loopback. Not used by the nodes."""
