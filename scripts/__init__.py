"""Tools run from the repository root: benchmarks (`python -m scripts.benchmarks.NAME`), the
.env.example generator, sample and reference-data makers."""
