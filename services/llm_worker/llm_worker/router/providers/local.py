"""Offline, deterministic, extractive provider: works without keys, network or extra packages."""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from typing import Any, Final

from llm_worker.router.base import (
    BadRequestError,
    Completion,
    CompletionRequest,
    ProviderConfig,
)

NO_SPEECH: Final = "The recording contains no speech."
NO_ACTION_ITEMS: Final = "No action items found."
DIARY_HEADING: Final = "Diary entry"
DIARY_MARKER: Final = "(Drafted offline by Voxflow's local extractive provider.)"

_CHUNK_WORDS: Final = 20
# Longer stretches without punctuation are treated as unpunctuated ASR output and chunked.
_MAX_SENTENCE_WORDS: Final = 40
_MAX_SUMMARY_SENTENCES: Final = 5
# Short fragments are scored as if this long so one-word interjections cannot win.
_MIN_SCORING_LENGTH: Final = 8
_MAX_QUOTED_INSTRUCTION: Final = 200

# Kept as prose-like text because a one-word-per-line literal would dwarf the module.
_STOPWORD_TEXT: Final = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing done down during each even
    ever every few for from further get gets got had has have having he her here hers herself
    him himself his how i if in into is it its itself just let me more most my myself no nor
    not now of off on once only or other our ours ourselves out over own really same she
    should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who
    whom why will with would yet you your yours yourself yourselves one two lot lots thing
    things something anything everything nothing someone anyone everyone nobody going go
    gonna wanna like yeah yes okay ok um uh uhm hmm mm oh well right kind sort actually
    basically maybe probably today tomorrow yesterday monday tuesday wednesday thursday
    friday saturday sunday i'm i've i'll i'd we're we've we'll it's that's there's don't
    doesn't didn't can't won't isn't aren't wasn't let's you're they're
"""
_STOPWORDS: Final = frozenset(_STOPWORD_TEXT.split())
_ABBREVIATION_TEXT: Final = (
    "mr. mrs. ms. dr. prof. st. vs. e.g. i.e. approx. no. fig. jr. sr. inc. ltd."
)
_ABBREVIATIONS: Final = frozenset(_ABBREVIATION_TEXT.split())

_WORD: Final = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_BREAK: Final = re.compile(r"(?<=[.!?])\s+")
_HAS_PUNCTUATION: Final = re.compile(r"[.!?]")
_WEEKDAYS: Final = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_ACTION_CUE: Final = re.compile(
    r"\b(?:needs? to|ha(?:ve|s) to|must|should|will|'ll|going to|gonna|let's|remember to"
    r"|don't forget"
    r"|to-?dos?|to do|follow[- ]?up|make sure|please|deadline"
    rf"|by (?:(?:next |this )?(?:{_WEEKDAYS})|tomorrow))\b",
    re.IGNORECASE,
)
_OWNER: Final = re.compile(
    r"\b(?P<who>[A-Za-z]+)(?:\s+(?:will|shall|should|must|needs? to|ha(?:s|ve) to"
    r"|(?:am|is|are) (?:going to|gonna))\b|'ll\b|'m (?:going to|gonna)\b)"
)
_LETS: Final = re.compile(r"\blet's\b", re.IGNORECASE)


def _normalise(text: str) -> str:
    # Whisper emits typographic apostrophes; the cue and owner patterns expect ASCII ones.
    return " ".join(text.replace("\u2019", "'").split())


def _chunk(words: list[str]) -> list[str]:
    # Even chunks, so an unpunctuated stretch never ends in a stray two-word fragment.
    count = math.ceil(len(words) / _CHUNK_WORDS)
    size = math.ceil(len(words) / count)
    return [" ".join(words[start : start + size]) for start in range(0, len(words), size)]


# Sentences longer than this are split at commas into clauses of at least _MIN_CLAUSE_WORDS.
_CLAUSE_SPLIT_WORDS = 18
_MIN_CLAUSE_WORDS = 4


def split_sentences(text: str) -> list[str]:
    """Split a transcript into sentences, chunking stretches that lack punctuation."""
    text = _normalise(text)
    if not text:
        return []
    if not _HAS_PUNCTUATION.search(text):
        return _chunk(text.split())
    pieces: list[str] = []
    for piece in _SENTENCE_BREAK.split(text):
        if pieces and pieces[-1].rsplit(" ", 1)[-1].lower() in _ABBREVIATIONS:
            pieces[-1] = f"{pieces[-1]} {piece}"
        else:
            pieces.append(piece)
    sentences: list[str] = []
    for piece in pieces:
        for clause in _split_clauses(piece):
            words = clause.split()
            sentences.extend(_chunk(words) if len(words) > _MAX_SENTENCE_WORDS else [clause])
    return sentences


def _split_clauses(sentence: str) -> list[str]:
    """Split a long sentence at commas: Whisper often joins spoken sentences with commas."""
    if len(sentence.split()) <= _CLAUSE_SPLIT_WORDS or "," not in sentence:
        return [sentence]
    clauses: list[str] = []
    for part in (p.strip() for p in sentence.split(",")):
        if not part:
            continue
        # Short fragments ("and then", "well") stay attached to the clause before them.
        too_short = len(part.split()) < _MIN_CLAUSE_WORDS
        if clauses and (too_short or len(clauses[-1].split()) < _MIN_CLAUSE_WORDS):
            clauses[-1] = f"{clauses[-1]}, {part}"
        else:
            clauses.append(part)
    return [_tidy_clause(c) for c in clauses]


def _tidy_clause(clause: str) -> str:
    """Drop a leading conjunction, capitalise, and end with a full stop."""
    words = clause.split()
    if len(words) > _MIN_CLAUSE_WORDS and words[0].lower() in ("and", "but", "so", "then"):
        words = words[1:]
    text = " ".join(words)
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else f"{text}."


def _terms(sentence: str) -> list[str]:
    return [
        word
        for word in _WORD.findall(sentence.lower())
        if word not in _STOPWORDS and (len(word) > 2 or word.isdigit())
    ]


def key_sentences(sentences: list[str]) -> list[str]:
    """Pick the top-scoring sentences by normalised term frequency, in original order."""
    return [sentences[index] for index in key_indices(sentences)]


def key_indices(sentences: list[str]) -> list[int]:
    """The positions of `key_sentences`' picks."""
    if not sentences:
        return []
    frequencies = Counter(term for sentence in sentences for term in _terms(sentence))
    top = max(frequencies.values(), default=1)
    scores = [
        sum(frequencies[term] / top for term in _terms(sentence))
        / max(len(_WORD.findall(sentence.lower())), _MIN_SCORING_LENGTH)
        for sentence in sentences
    ]
    # About a third of the sentences, but at least two when there are three or more.
    k = max(min(2, len(sentences) - 1), 1, min(_MAX_SUMMARY_SENTENCES, len(sentences) // 3))
    # Ties go to the earlier sentence, which keeps the output deterministic.
    ranked = sorted(range(len(sentences)), key=lambda index: (-scores[index], index))
    return sorted(ranked[:k])


Said = list[tuple[str | None, str]]  # (speaker, sentence), the speaker None when undiarized


def said(transcript: str, speakers: tuple[str, ...] = ()) -> Said:
    """The transcript's sentences with who said each: a diarized transcript comes as turns,
    one per line (`Ada: ...`), by the names in `speakers`; any other line has no speaker."""
    if not speakers:
        return [(None, sentence) for sentence in split_sentences(transcript)]
    names = sorted(speakers, key=len, reverse=True)  # "Ann Lee" before "Ann"
    sentences: Said = []
    for line in transcript.splitlines():
        who = next((name for name in names if line.startswith(f"{name}: ")), None)
        words = line[len(who) + 2 :] if who else line
        sentences += [(who, sentence) for sentence in split_sentences(words)]
    return sentences


def _attributed(who: str | None, sentence: str) -> str:
    return f"{who}: {sentence}" if who else sentence


def summarise(transcript: str, speakers: tuple[str, ...] = ()) -> str:
    """Return an extractive summary, or a fixed sentence when there is no speech.

    With speakers, each picked sentence is a line saying who said it."""
    sentences = said(transcript, speakers)
    picked = [sentences[i] for i in key_indices([sentence for _, sentence in sentences])]
    if not picked:
        return NO_SPEECH
    if speakers:
        return "\n".join(_attributed(who, sentence) for who, sentence in picked)
    return " ".join(sentence for _, sentence in picked)


def guess_owner(sentence: str) -> str | None:
    """Guess who owns an action: "I", "we", or a capitalised name before a modal verb."""
    sentence = _normalise(sentence)
    for match in _OWNER.finditer(sentence):
        who = match["who"]
        if who.lower() in {"i", "we"}:
            return "I" if who.lower() == "i" else "we"
        if who[0].isupper() and who.lower() not in _STOPWORDS:
            return who
    # "Let's" is a commitment by the group even though no subject precedes a modal.
    return "we" if _LETS.search(sentence) else None


def find_action_items(
    transcript: str, speakers: tuple[str, ...] = ()
) -> list[dict[str, str | None]]:
    """Return sentences with action cues as {"text", "owner"} dicts, without duplicates.

    In a diarized transcript, a speaker's own commitment ("I will ...") is that speaker's."""
    items: list[dict[str, str | None]] = []
    seen: set[str] = set()
    for who, sentence in said(transcript, speakers):
        key = sentence.casefold()
        if key in seen or not _ACTION_CUE.search(sentence):
            continue
        seen.add(key)
        owner = guess_owner(sentence)
        items.append({"text": sentence, "owner": who if owner == "I" and who else owner})
    return items


def _action_items_text(items: list[dict[str, str | None]]) -> str:
    if not items:
        return NO_ACTION_ITEMS
    lines = []
    for item in items:
        owner = f" (owner: {item['owner']})" if item["owner"] else ""
        lines.append(f"- {item['text']}{owner}")
    return "\n".join(lines)


def _diary(transcript: str, speakers: tuple[str, ...] = ()) -> str:
    sentences = said(transcript, speakers)
    picked = [sentences[i] for i in key_indices([sentence for _, sentence in sentences])]
    if not picked:
        body = "Today, I recorded a note, but it contains no speech."
    else:
        quotes = "\n".join(
            f'- {who} said: "{sentence}"' if who else f'- "{sentence}"' for who, sentence in picked
        )
        body = f"Today, these were the moments that stood out:\n{quotes}"
    return f"{DIARY_HEADING}\n\n{body}\n\n{DIARY_MARKER}"


def _custom(transcript: str, instruction: str | None, speakers: tuple[str, ...] = ()) -> str:
    cleaned = " ".join((instruction or "").split())
    if len(cleaned) > _MAX_QUOTED_INSTRUCTION:
        cleaned = cleaned[: _MAX_QUOTED_INSTRUCTION - 1].rstrip() + "\u2026"
    quoted = f', so it could not apply "{cleaned}"' if cleaned else ""
    preface = (
        f"The local provider cannot follow free-form instructions{quoted}; "
        "here is an extractive summary instead."
    )
    return f"{preface}\n\n{summarise(transcript, speakers)}"


def _count_tokens(text: str) -> int:
    return len(text.split())


class LocalProvider:
    """Extractive provider that needs no key or network and always gives the same answer."""

    name: str = "local"
    model: str = "extractive-v1"

    def __init__(self, config: ProviderConfig | None = None) -> None:
        # Accepted so build_provider can treat every kind alike; nothing here is configurable.
        del config

    def complete(self, request: CompletionRequest) -> Completion:
        """Produce a note for the request's task from its raw transcript."""
        started = time.perf_counter()
        output_json: Any | None = None
        speakers = request.speakers
        if request.task in ("summary", "part_notes"):
            text = summarise(request.transcript, speakers)
        elif request.task == "diary":
            text = _diary(request.transcript, speakers)
        elif request.task == "action_items":
            items = find_action_items(request.transcript, speakers)
            text, output_json = _action_items_text(items), items
        elif request.task == "custom":
            text = _custom(request.transcript, request.instruction, speakers)
        else:
            raise BadRequestError(f"the local provider does not support task {request.task!r}")
        return Completion(
            text=text,
            tokens_in=sum(_count_tokens(message.content) for message in request.messages),
            tokens_out=_count_tokens(text),
            model=self.model,
            provider=self.name,
            latency_ms=int((time.perf_counter() - started) * 1000),
            output_json=output_json,
        )
