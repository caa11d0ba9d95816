"""The README, docs/ and the reports' READMEs are checked against the code they describe.

1. Every `catdog-*` command they show, in a fenced shell block or an inline code span, names a
   subcommand and flags that the real CLI has: each CLI's `--help` and each subcommand's is asked
   once per session, through the entry points pyproject names (what the console scripts run), and
   the option names parsed from it, so a renamed or removed flag fails here, not in a reader's terminal.
2. Every other `--flag` the prose names is some CLI's option (or another tool's, listed in OTHER_TOOLS).
3. Every relative link points to a file that exists, and a `#anchor` to a heading of that file.
4. Every source path they name (`train/...py`, `spine/...py`, `scripts/...sh`) exists.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIS = ("catdog-train", "catdog-export", "catdog-runtime", "catdog-bench")
MODULE_CLIS = {"catdog.train.cli": "catdog-train", "catdog.export.cli": "catdog-export",
               "catdog.runtime.cli": "catdog-runtime", "catdog.benchmarks.cli": "catdog-bench"}
SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}
SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", ";;", "|&"}
REDIRECTS = {">", ">>", "<", "<<", ">&", "&>", "2>", "<>"}


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def link_files() -> list[Path]:
    return [*doc_files(), *sorted((REPO / "reports").glob("*/README.md"))]


# --- extracting commands -------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    where: str  # file:line
    cli: str  # catdog-train, ...
    args: tuple[str, ...]


FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")


def fenced_blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """(first line number, language, lines) of every fenced block."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start, body = m.group(2), m.group(3).lower(), i + 2, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        out.append((start, lang, body))
        i += 1
    return out


def _is_shell(lang: str, body: list[str]) -> bool:
    if lang in SHELL_LANGS:
        return True
    if lang:
        return False  # nginx, python, json ...: not shell
    return any(re.match(r"\s*(\$ |catdog-)", line) for line in body)


def _logical_lines(body: list[str], first: int) -> list[tuple[int, str]]:
    """Join `\\` continuations; drop `$ ` prompts (in a prompted block only prompted lines are commands)."""
    prompted = any(line.lstrip().startswith("$ ") for line in body)
    out: list[tuple[int, str]] = []
    pending, start = "", first
    for n, raw in enumerate(body, first):
        line = raw.strip()
        if not pending:
            start = n
            if prompted:
                if not line.startswith("$ "):
                    continue
                line = line[2:]
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


SUBST = re.compile(r"\$\(([^()]*)\)|`([^`]*)`")


def _tokens(line: str) -> list[str]:
    lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lex.whitespace_split = True
    lex.commenters = "#"
    try:
        return list(lex)
    except ValueError:  # an unbalanced quote: a placeholder line, not a command
        return line.split()


def commands_in_line(line: str, where: str) -> list[Command]:
    """Every catdog-* invocation in one shell line: pipes, &&, ;, subshells, $(...), env
    assignments, sudo/exec/time/torchrun -m and paths such as .venv/bin/catdog-runtime."""
    found: list[Command] = []
    inner = [a or b for a, b in SUBST.findall(line)]
    for sub in inner:
        found += commands_in_line(sub, where)
    line = SUBST.sub(" SUBST ", line)
    segment: list[str] = []
    for tok in [*_tokens(line), ";"]:
        if tok in SEPARATORS:
            cmd = _command(segment, where)
            if cmd:
                found.append(cmd)
            segment = []
        else:
            segment.append(tok)
    return found


def _command(tokens: list[str], where: str) -> Command | None:
    toks: list[str] = []
    skip = False
    for tok in tokens:  # drop redirections and their targets
        if skip:
            skip = False
            continue
        if tok in REDIRECTS or re.fullmatch(r"\d?[<>]+&?", tok):
            skip = True
            continue
        toks.append(tok)
    while toks and (re.match(r"[A-Za-z_]\w*=", toks[0]) or toks[0] in {"sudo", "exec", "time", "env", "nohup"}):
        toks = toks[1:]
    for i, tok in enumerate(toks):
        name = tok.rsplit("/", 1)[-1]
        if i == 0 and name in CLIS:
            return Command(where, name, tuple(toks[1:]))
        if tok == "-m" and i + 1 < len(toks) and toks[i + 1] in MODULE_CLIS:  # python -m / torchrun -m
            return Command(where, MODULE_CLIS[toks[i + 1]], tuple(toks[i + 2:]))
    return None


INLINE = re.compile(r"(?<!`)`((?:[^`\n]|\n(?!\n))+)`(?!`)")


def commands_in_markdown(text: str, name: str) -> list[Command]:
    """The commands of every fenced shell block, and every inline code span that starts with a CLI."""
    found: list[Command] = []
    fenced_lines: set[int] = set()
    for first, lang, body in fenced_blocks(text):
        fenced_lines.update(range(first - 1, first + len(body) + 1))
        if not _is_shell(lang, body):
            continue
        for n, line in _logical_lines(body, first):
            found += commands_in_line(line, f"{name}:{n}")
    prose = "\n".join("" if n in fenced_lines else line for n, line in enumerate(text.splitlines(), 1))
    for m in INLINE.finditer(prose):
        span = " ".join(m.group(1).split())
        if re.match(r"(catdog-(train|export|runtime|bench))\b", span):
            n = prose.count("\n", 0, m.start()) + 1
            found += commands_in_line(span.replace("...", " "), f"{name}:{n}")
    return found


# --- asking the real CLIs ------------------------------------------------------------------------

def _entry_points() -> dict[str, str]:
    """pyproject's [project.scripts] (read by hand: tomllib is 3.11+, the project supports 3.10)."""
    section = (REPO / "pyproject.toml").read_text().split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^\s*"?([\w-]+)"?\s*=\s*"([\w.:]+)"', section, re.M))


HELP_SCRIPT = """
import importlib, json, sys
for cli, sub, entry in json.loads(sys.argv[1]):
    module, func = entry.split(":")
    sys.argv = [cli, *([sub] if sub else []), "--help"]
    print(f"\\n@@@ {cli} {sub or ''}", flush=True)
    try:
        getattr(importlib.import_module(module), func)()
    except SystemExit as stop:
        if stop.code not in (0, None):
            print(f"@@@ exit {stop.code}", flush=True)
    sys.stdout.flush()
"""


def _ask(pairs: list[tuple[str, str | None]]) -> dict[tuple[str, str | None], str]:
    """`CLI [SUB] --help` for each pair, through each CLI's entry point (what its console script runs), all in
    one Python process: one interpreter start instead of twenty."""
    entries = _entry_points()
    job = json.dumps([[cli, sub, entries[cli]] for cli, sub in pairs])
    env = {**os.environ, "COLUMNS": "300", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run([sys.executable, "-c", HELP_SCRIPT, job], capture_output=True, text=True, env=env,
                          timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parts = re.split(r"^@@@ (\S+) ?(\S*)\n", proc.stdout, flags=re.M)[1:]
    out = {(cli, sub or None): text for cli, sub, text in zip(parts[::3], parts[1::3], parts[2::3], strict=True)}
    for key, text in out.items():
        assert "@@@ exit" not in text, f"{' '.join(k for k in key if k)} --help failed: {text[-2000:]}"
    assert set(out) == set(pairs), (sorted(map(str, out)), proc.stderr[-2000:])
    return out


@functools.lru_cache(maxsize=None)
def _all_helps() -> dict[tuple[str, str | None], str]:
    """Every CLI's help, then every subcommand's: asked once per test session."""
    helps = _ask([(cli, None) for cli in CLIS])
    subs = [(cli, sub) for cli in CLIS for sub in sorted(_subcommand_names(helps[(cli, None)]))]
    return {**helps, **_ask(subs)}


def help_text(cli: str, sub: str | None = None) -> str:
    helps = _all_helps()
    assert (cli, sub) in helps, f"{cli} has no subcommand {sub}"
    return helps[(cli, sub)]


def _panels(help_out: str) -> dict[str, list[str]]:
    """Rich help: the rows of each boxed panel (Options, Commands, ...), by the panel's title."""
    panels: dict[str, list[str]] = {}
    title = None
    for line in help_out.splitlines():
        m = re.match(r"\s*╭─+ (.+?) ─", line)
        if m:
            title = m.group(1)
            panels.setdefault(title, [])
        elif line.lstrip().startswith("╰"):
            title = None
        elif title and line.lstrip().startswith("│"):
            panels[title].append(line.strip().strip("│").rstrip())
    return panels


@functools.lru_cache(maxsize=None)
def options(cli: str, sub: str | None = None) -> frozenset[str]:
    """The option names (`--x`, `--no-x`, `-x`) in the leading column of the help's option rows."""
    names: set[str] = set()
    for title, rows in _panels(help_text(cli, sub)).items():
        if title.lower().startswith("command"):
            continue
        for row in rows:
            if not re.match(r"\s{0,4}(\*\s+)?-", row):  # a wrapped help line, not an option's row
                continue
            for tok in row.replace("*", " ", 1).split():
                tok = tok.rstrip(",")
                if not tok.startswith("-"):
                    break
                names.add(tok)
    if not names:  # plain click help (no rich): "  -r, --recursive  TEXT  help"
        for m in re.finditer(r"^\s{1,4}(-[^\s].*?)(?:\s{2,}|$)", help_text(cli, sub), re.M):
            names.update(t for t in re.split(r"[,/\s]+", m.group(1)) if t.startswith("-"))
    assert names, f"no options parsed from {cli} {sub or ''} --help"
    return frozenset(names)


def _subcommand_names(help_out: str) -> frozenset[str]:
    rows = [r for t, rs in _panels(help_out).items() if t.lower().startswith("command") for r in rs]
    return frozenset(m.group(1) for r in rows if (m := re.match(r" ?([a-z][\w-]*)(\s|$)", r)))


def subcommands(cli: str) -> frozenset[str]:
    return _subcommand_names(help_text(cli))


def _requires_subcommand(cli: str) -> bool:
    usage = next((ln for ln in help_text(cli).splitlines() if "Usage:" in ln), "")
    return "COMMAND" in usage and "[COMMAND]" not in usage


def problems(cmd: Command) -> list[str]:
    """What in one command the CLI does not have: an unknown subcommand or flag."""
    args = [a for a in cmd.args if a not in {"[", "]"}]
    subs = subcommands(cmd.cli)
    sub = None
    if args and args[0] in subs:
        sub, args = args[0], args[1:]
    elif subs and _requires_subcommand(cmd.cli) and args and args[0] not in {"--help", "-h"}:
        return [f"{cmd.where}: `{cmd.cli} {args[0]}`: no such subcommand (has: {', '.join(sorted(subs))})"]
    known = options(cmd.cli, sub)
    out = []
    for arg in args:
        flag = arg.strip("[]").split("=", 1)[0]
        if re.fullmatch(r"--[A-Za-z0-9][\w-]*|-[A-Za-z]", flag) and flag not in known:
            out.append(f"{cmd.where}: `{cmd.cli}{' ' + sub if sub else ''}` has no option {flag}")
    return out


def all_commands() -> list[Command]:
    return [c for f in doc_files() for c in commands_in_markdown(f.read_text(), str(f.relative_to(REPO)))]


# --- the tests -----------------------------------------------------------------------------------

def test_every_catdog_command_in_the_readme_and_docs_exists():
    cmds = all_commands()
    assert len({c.cli for c in cmds}) == len(CLIS), f"expected commands of all four CLIs, found {cmds}"
    bad = [p for c in cmds for p in problems(c)]
    assert not bad, "commands in the docs that the CLIs do not have:\n" + "\n".join(bad)


def test_the_checker_catches_a_made_up_flag_and_subcommand():
    doc = """
Some prose with `catdog-runtime photo.jpg --no-such-flag 3` inline.
```bash
FOO=1 catdog-bench run export/ \\
  --name x --made-up-option | tee log.txt && echo "$(catdog-train evaluate --bogus)"
catdog-bench frobnicate --json
```
```
$ .venv/bin/catdog-export --ckpt a.pth --out e/ --int8 > out.txt   # a comment with --not-a-flag
provider: cpu (auto) --printed-output
```
"""
    cmds = commands_in_markdown(doc, "selftest.md")
    assert [(c.cli, c.args[:1]) for c in cmds] == [
        ("catdog-train", ("evaluate",)), ("catdog-bench", ("run",)), ("catdog-bench", ("frobnicate",)),
        ("catdog-export", ("--ckpt",)), ("catdog-runtime", ("photo.jpg",))]
    found = "\n".join(p for c in cmds for p in problems(c))
    for wrong in ("--made-up-option", "--bogus", "frobnicate", "--no-such-flag"):
        assert wrong in found, (wrong, found)
    for right in ("--name", "--ckpt", "--int8", "--not-a-flag", "--printed-output"):
        assert right not in found, (right, found)


def test_the_option_parser_reads_real_options():
    assert {"--model", "-m", "--json", "--recursive", "-r", "--serve"} <= options("catdog-runtime")
    assert {"--int8-select", "--no-int8-select", "--ckpt"} <= options("catdog-export")
    assert {"prepare", "evaluate", "cv"} <= subcommands("catdog-train")
    assert {"run", "int8", "doctor"} <= subcommands("catdog-bench")


# Flags of other tools that the docs show beside catdog's own: any other `--flag` in prose must be a catdog option.
OTHER_TOOLS = {
    "--address": "ray start", "--port": "ray start", "--nproc_per_node": "torchrun", "--data-binary": "curl",
    "--system-site-packages": "python3 -m venv", "--shared": "benchmarks/live/rtsp_camera.py",
    "--split": "scripts/requantize.py", "--exclude": "scripts/requantize.py", "--tar": "scripts/photos_to_cifar.py",
}


@functools.lru_cache(maxsize=None)
def every_option() -> frozenset[str]:
    """The options of every CLI and every subcommand."""
    return frozenset().union(*(options(cli, sub) for cli, sub in _all_helps()))


def unknown_flags(text: str) -> set[str]:
    flags = {m.group(1) for m in re.finditer(r"(?<![\w-])(--[a-z][\w-]*)", text)}
    return flags - every_option() - set(OTHER_TOOLS)


def test_every_flag_the_docs_mention_exists():
    """Prose names flags too (`--int8-target avx2`, `--ray auto`): each must be some catdog CLI's option."""
    bad = sorted(f"{f.relative_to(REPO)}: {flag}" for f in link_files() for flag in unknown_flags(f.read_text()))
    assert not bad, "no catdog CLI has these flags (another tool's? add it to OTHER_TOOLS):\n" + "\n".join(bad)
    assert unknown_flags("use `--int8-target avx2` or --made-up, not ray's --address") == {"--made-up"}


# --- links ---------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text()
    fenced = {n for first, _, body in fenced_blocks(text) for n in range(first - 1, first + len(body) + 1)}
    out, seen = set(), {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and n not in fenced:
            s = slug(m.group(1))
            k = seen.get(s, 0)
            out.add(s if k == 0 else f"{s}-{k}")
            seen[s] = k + 1
    return out


def link_problems(path: Path) -> list[str]:
    text = path.read_text()
    fenced = {n for first, _, body in fenced_blocks(text) for n in range(first - 1, first + len(body) + 1)}
    prose = "\n".join("" if n in fenced else line for n, line in enumerate(text.splitlines(), 1))
    prose = re.sub(r"`[^`\n]*`", "", prose)
    out = []
    for m in LINK.finditer(prose):
        target = m.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        where = f"{path.relative_to(REPO)}:{prose.count(chr(10), 0, m.start()) + 1}"
        if not dest.exists():
            out.append(f"{where}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{where}: {target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    return out


def test_every_relative_link_resolves():
    bad = [p for f in link_files() for p in link_problems(f)]
    assert not bad, "\n".join(bad)


ROOTS = "train|export|runtime|benchmarks|tests|scripts|spine|engine|live|scale|serve"  # spine/...: under runtime/
REPO_PATH = re.compile(rf"(?<![\w/.-])((?:{ROOTS})/[\w./-]*\w\.(?:py|sh))\b")


def test_every_source_path_the_docs_name_exists():
    """A module named in the docs that has moved or gone is a reader sent to nothing."""
    bad = [f"{f.relative_to(REPO)}: {m.group(1)}" for f in link_files() for m in REPO_PATH.finditer(f.read_text())
           if not (REPO / m.group(1)).exists() and not (REPO / "runtime" / m.group(1)).exists()]
    assert not bad, "paths in the docs that do not exist:\n" + "\n".join(bad)


def test_the_link_checker_catches_a_broken_link_and_anchor(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "a.md").write_text("# Top part\n\n## 2. Run (`x`, no y)\n[ok](#top-part) [ok](b.md#2-run-x-no-y)"
                                   " [bad](c.md) [bad](b.md#nope) `[code](ignored.md)` [web](https://x.org/y)\n")
    (tmp_path / "b.md").write_text("## 2. Run (`x`, no y)\n")
    bad = link_problems(tmp_path / "a.md")
    assert len(bad) == 2 and "c.md: no such file" in bad[0] and "#nope" in bad[1], bad
    assert anchors(tmp_path / "a.md") == {"top-part", "2-run-x-no-y"}


def test_the_readme_stays_a_guide():
    """Issue 33: the README is a guide of at most 250 lines; reference goes to docs/, figures beside their reports."""
    lines = len((REPO / "README.md").read_text().splitlines())
    assert lines <= 250, f"README.md has {lines} lines: move reference material to docs/"
