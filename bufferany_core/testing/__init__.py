"""Code for tests and benchmarks only: nothing a render, a CLI or a host imports lives here."""
