"""A small Dockerfile reader for offline checks (no Docker engine needed).

It splits a Dockerfile into instructions (comments dropped, continuation lines joined),
groups them into stages with the global `ARG` defaults substituted into `FROM`, and answers
what the checks ask: what is copied from where, which command and environment the final
stage has, which user it runs as.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    value: str
    line: int


@dataclass
class Stage:
    """A build stage: its base (image or earlier stage) and its instructions."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """This stage's instructions of one kind, in order."""
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions (no heredocs, default `\\` escape)."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#") or (not line and not parts):
            continue  # comments (also inside continuations) and blank lines
        if not line:
            continue  # a blank line inside a continuation is skipped, as Docker does
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        keyword, _, rest = " ".join(p for p in parts if p).partition(" ")
        instructions.append(Instruction(keyword.upper(), rest.strip(), start))
        parts = []
    assert not parts, f"the Dockerfile ends inside a continuation started on line {start}"
    return instructions


_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def substitute(value: str, variables: dict[str, str]) -> str:
    """Expand `$VAR`, `${VAR}` and `${VAR:-default}` from the given variables."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name in variables:
            return variables[name]
        assert match.group(2) is not None, f"${name} has no value: declare it with ARG"
        return match.group(2)

    return _VARIABLE.sub(one, value)


def arg_default(value: str) -> tuple[str, str | None]:
    """`NAME=default` (quotes allowed) or `NAME` of an ARG instruction."""
    name, eq, default = value.partition("=")
    if not eq:
        return name.strip(), None
    (unquoted,) = shlex.split(default) or [""]
    return name.strip(), unquoted


def stages(instructions: list[Instruction]) -> list[Stage]:
    """Group instructions into stages, with global ARG defaults substituted in FROM."""
    defaults: dict[str, str] = {}
    result: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = [w for w in instruction.value.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            assert len(words) in (1, 3), f"unexpected FROM on line {instruction.line}"
            result.append(Stage(substitute(words[0], defaults), name))
        elif not result:
            assert instruction.keyword == "ARG", f"only ARG may precede FROM: {instruction}"
            name, default = arg_default(instruction.value)
            if default is not None:
                defaults[name] = default
        else:
            result[-1].instructions.append(instruction)
    assert result, "no FROM"
    return result


def load(path: Path) -> list[Stage]:
    """The stages of a Dockerfile."""
    return stages(parse(path.read_text(encoding="utf-8")))


def global_args(path: Path) -> dict[str, str]:
    """The ARG defaults declared before the first FROM."""
    found: dict[str, str] = {}
    for instruction in parse(path.read_text(encoding="utf-8")):
        if instruction.keyword == "FROM":
            break
        name, default = arg_default(instruction.value)
        if default is not None:
            found[name] = default
    return found


def by_name(all_stages: list[Stage]) -> dict[str, Stage]:
    """Named stages by name."""
    return {s.name: s for s in all_stages if s.name}


def ancestry(stage: Stage, all_stages: list[Stage]) -> list[Stage]:
    """The stage, then the stages it is built FROM, up to the one on an image."""
    names = by_name(all_stages)
    chain = [stage]
    while chain[-1].base in names:
        chain.append(names[chain[-1].base])
    return chain


def base_image(stage: Stage, all_stages: list[Stage]) -> str:
    """The image a stage finally rests on, through earlier stages."""
    return ancestry(stage, all_stages)[-1].base


_FLAG = re.compile(r"--([\w-]+)(?:=(\S*))?\s*")


def flags_and_words(value: str) -> tuple[dict[str, str], list[str]]:
    """Split leading `--flag=value` options from the arguments (shell or JSON form)."""
    flags: dict[str, str] = {}
    rest = value
    while match := _FLAG.match(rest):
        flags[match.group(1)] = match.group(2) or ""
        rest = rest[match.end() :]
    if not rest.startswith("["):
        return flags, shlex.split(rest)
    words = json.loads(rest)
    assert isinstance(words, list)
    assert all(isinstance(w, str) for w in words)
    return flags, words


@dataclass(frozen=True)
class Copy:
    """A COPY or ADD: its stage, flags, sources, destination and working directory."""

    stage: Stage
    flags: dict[str, str]
    sources: list[str]
    destination: str
    workdir: str
    line: int


def copies(all_stages: list[Stage]) -> list[Copy]:
    """Every COPY and ADD, with the WORKDIR in force (inherited through FROM stage)."""
    found: list[Copy] = []
    workdirs: dict[str | None, str] = {}
    names = by_name(all_stages)
    for stage in all_stages:
        workdir = workdirs.get(stage.base, "/") if stage.base in names else "/"
        for instruction in stage.instructions:
            if instruction.keyword == "WORKDIR":
                workdir = str(PurePosixPath(workdir) / instruction.value)
            elif instruction.keyword in ("COPY", "ADD"):
                flags, words = flags_and_words(instruction.value)
                assert len(words) >= 2, f"line {instruction.line}: COPY needs source and dest"
                found.append(Copy(stage, flags, words[:-1], words[-1], workdir, instruction.line))
        workdirs[stage.name] = workdir
    return found


def landing(source: str, copy: Copy) -> PurePosixPath:
    """Where a copied file or directory ends up in the image."""
    destination = PurePosixPath(copy.workdir) / copy.destination
    into_directory = copy.destination.endswith(("/", "/.")) or copy.destination == "."
    if into_directory or len(copy.sources) > 1:
        return destination / PurePosixPath(source).name
    return destination


def context_copies(path: Path) -> list[Copy]:
    """COPY/ADD instructions that read the build context (not another stage or image)."""
    return [c for c in copies(load(path)) if "from" not in c.flags]


def final(path: Path) -> tuple[Stage, list[Stage]]:
    """The last stage (what `docker build` produces without --target) and all stages."""
    all_stages = load(path)
    return all_stages[-1], all_stages


def exec_form(instruction: Instruction) -> list[str]:
    """The argv of a CMD or ENTRYPOINT, which must use the exec (JSON) form."""
    assert instruction.value.startswith("["), (
        f"line {instruction.line}: use the JSON exec form so SIGTERM reaches the process as PID 1"
    )
    argv = json.loads(instruction.value)
    assert isinstance(argv, list)
    assert all(isinstance(a, str) for a in argv)
    return argv


def option(argv: list[str], short: str, long: str) -> str:
    """The value of `-X value`, `--long value` or `--long=value` in an argv."""
    for index, arg in enumerate(argv):
        if arg in (short, long):
            return argv[index + 1]
        if arg.startswith(long + "="):
            return arg.partition("=")[2]
    raise AssertionError(f"{short}/{long} missing from {argv}")


def command(stage: Stage, all_stages: list[Stage]) -> list[str]:
    """ENTRYPOINT + CMD of a stage (the last of each, inherited through FROM stage)."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    for link in reversed(ancestry(stage, all_stages)):
        for instruction in link.instructions:
            if instruction.keyword == "ENTRYPOINT":
                entrypoint = exec_form(instruction)
            elif instruction.keyword == "CMD":
                cmd = exec_form(instruction)
    return entrypoint + cmd


def environment(stage: Stage, all_stages: list[Stage]) -> dict[str, str]:
    """ENV values in force in a stage (inherited through FROM stage; `KEY=value` form)."""
    env: dict[str, str] = {}
    for link in reversed(ancestry(stage, all_stages)):
        for instruction in link.all("ENV"):
            for pair in shlex.split(instruction.value):
                key, eq, value = pair.partition("=")
                assert eq, f"line {instruction.line}: use ENV KEY=value"
                env[key] = value
    return env


def user(stage: Stage, all_stages: list[Stage]) -> str | None:
    """The user (name or uid, without the group) the stage runs as; None: root by default."""
    users = [i for s in reversed(ancestry(stage, all_stages)) for i in s.all("USER")]
    return users[-1].value.split(":")[0] if users else None


def exposed_ports(stage: Stage) -> set[int]:
    """Ports a stage EXPOSEs (`8000` or `8000/tcp`)."""
    return {int(word.split("/")[0]) for i in stage.all("EXPOSE") for word in i.value.split()}


def healthcheck(stage: Stage) -> list[str] | None:
    """The HEALTHCHECK command's words (exec or shell form); None when there is none."""
    found = stage.all("HEALTHCHECK")
    if not found:
        return None
    (health,) = found
    _, _, rest = health.value.partition("CMD ")
    rest = rest.strip()
    if rest.startswith("["):
        words = json.loads(rest)
        assert isinstance(words, list)
        return [str(w) for w in words]
    return shlex.split(rest)
