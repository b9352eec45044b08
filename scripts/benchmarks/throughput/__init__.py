"""Throughput of Voxflow against faster-whisper called directly, on the same files in one run.

    uv run python -m scripts.benchmarks.throughput [--quick] [--workloads long,notes]
        [--skip-memory] [--json PATH] [--markdown PATH]

The modules: `phases` (what a phase is and measures), `processes` (memory and CPU of the
processes under test), `raw` (raw faster-whisper phases), `stack` (Voxflow's phases on an
embedded stack), `report` (targets, tables, the JSON and markdown files) and `__main__`
(options, corpus, the order of the phases).

Workloads (generated and cached by corpus.py: espeak-ng speech with reference texts):
long recordings (10 x ~5 min) and voice notes (100 x ~15 s); --quick uses 2 x ~1 min and
16 notes. Phases, each on every file of a workload:

1. raw sequential / raw batched: a fresh process (raw_whisper.py) loads the worker's
   `WhisperEngine` once with `whisper_mode` forced and window trimming off (faster-whisper's
   own batched pipeline, every clip padded to 30 s), transcribes a warm-up file untimed,
   then each file one at a time. Wall = the sum of the per-file transcription times.
   Voice notes also run raw micro-batched: groups of 8 files decoded and passed to the
   engine's `transcribe_batch` (the call the worker's micro-batches make), which shows how
   much the approach itself gains on this machine, apart from the platform around it.
   Raw batched runs again after Voxflow's phases ("raw batched, again"): the machine's
   speed drifts over a run, so the baseline is the mean of the two.
2. Voxflow: an embedded stack (`Stack`: one transcription worker process, concurrency 1, the
   same model) in a temporary directory gets one warm-up job, then every file of the
   workload at once (uploads from a thread pool), transcription only (`tasks=[]`). Wall =
   first upload started -> last job `finished_at` in the database (the same clock). Voice
   notes run twice, on a fresh stack each: micro-batching off (VOXFLOW_MICROBATCH_MAX_JOBS=1)
   and on (8 jobs, 30 s, no wait); long recordings run with the default settings.
3. Memory: peak RSS (the kernel's high-water mark) of a raw batched process transcribing a
   ~5-minute file and the 1-hour file (--quick: the 5-minute one only), each in its own
   process, against the transcription worker's pool process (the one running the task;
   Celery's main process is reported too) on a fresh stack given the same files in turn
   (its peak after the 1-hour job covers everything the process did, as the raw one's does).

Throughput = audio seconds / wall seconds (x real time); each Voxflow figure is also given as
a ratio to raw batched on the same workload. WER: lower-cased, punctuation removed, then
jiwer over the whole workload (all reference words at once: total edits / total reference
words, so long files weigh more); the mean of per-file WERs is in the JSON too.

Targets (from the "Transcription engine" issue): long recordings >= 0.9x raw batched; voice
notes >= 1.0x raw batched without micro-batching and >= 2x with it; Voxflow's WER no worse
than raw batched; worker peak RSS within 150 MB of raw batched (5-minute and 1-hour files;
taken as 150 MiB, the unit of the report).

Peak RSS is the kernel's high-water mark (VmHWM; ru_maxrss for the raw process). It counts
file-backed pages too (a memory-mapped file the process has read), which the kernel can drop
under pressure; "peak anon" is the largest anonymous RSS seen by sampling every 0.1 s.
"""
