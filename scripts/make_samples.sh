#!/usr/bin/env bash
# Regenerate the committed sample recordings in samples/ from their transcripts.
#
#   samples/<name>.txt  ->  samples/<name>.ogg   (mono, 16 kHz, Ogg Vorbis)
#
# Requires espeak-ng and sox (with Ogg Vorbis support). The .txt files hold the
# exact spoken text and serve as the reference transcript for WER checks.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
samples_dir="${repo_root}/samples"

voice="${VOICE:-en-us}"
speed="${SPEED:-150}"
# Vorbis quality -1..10; 0 is ~24 kbit/s for 16 kHz mono speech, plenty for Whisper.
quality="${QUALITY:-0}"

for tool in espeak-ng sox; do
    command -v "${tool}" >/dev/null 2>&1 || { echo "missing tool: ${tool}" >&2; exit 1; }
done

tmp_dir="$(mktemp -d)"
trap 'rm -rf "${tmp_dir}"' EXIT

for name in voice_note meeting; do
    text_file="${samples_dir}/${name}.txt"
    out_file="${samples_dir}/${name}.ogg"
    [[ -f "${text_file}" ]] || { echo "missing ${text_file}" >&2; exit 1; }

    # 1. Speak the text (espeak-ng writes 22.05 kHz mono 16-bit WAV).
    espeak-ng -v "${voice}" -s "${speed}" -f "${text_file}" -w "${tmp_dir}/${name}.raw.wav"
    # 2. Resample to 16 kHz mono with 0.3 s of silence before and 0.5 s after.
    sox "${tmp_dir}/${name}.raw.wav" -r 16000 -c 1 -b 16 "${tmp_dir}/${name}.wav" pad 0.3 0.5
    # 3. Encode to Ogg Vorbis; drop sox's default comment so output is reproducible.
    sox "${tmp_dir}/${name}.wav" --comment "" -C "${quality}" "${out_file}"

    printf '%s: %s bytes, %s s\n' "${out_file#"${repo_root}/"}" \
        "$(wc -c <"${out_file}")" "$(soxi -D "${out_file}")"
done
