"""The benchmark harness: `make bench` (or `python -m bench`) starts the stack on embedded
servers, measures every figure of the performance targets against its reference in the same
run, and prints one table. See bench/README.md."""
