"""Benchmarks, each run from the repository root as a module (`make bench*` runs them):

    uv run python -m scripts.benchmarks.overhead --help

overhead (per-job overhead), modes (decoding mode per length), windows (trimmed windows),
mates (micro-batch mates), batches (batch sizes), packing (notes packed per window), ramp
(first words of a long recording), diarization, router (the LLM router's overhead), console
(the web console's first load), load (API load), search (transcript search), openai_route
(OpenAI's route against the job API), throughput (Voxflow against raw faster-whisper).

What they share: harness (paths, consoles, tables, statistics, JSON results, machine facts,
embedded stacks and servers, the worker's Whisper engine, common options), corpus and
diarization_corpus (generated speech; run alone to make it ahead), loadgen (wrk), loadseed
and searchseed (database contents), raw_whisper (faster-whisper in a process of its own).
"""
