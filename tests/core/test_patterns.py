"""Operators' regular expressions run in linear time and mean what Python's ``re`` means.

Reproduces issue 11, defect 4: ``^(a|a)+$`` against 24 ``a``s and a ``!`` blocked the event
loop for 3 s, doubling per character, because patterns ran on Python's backtracking ``re``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charter.core.errors import PatternInvalid, UserError
from charter.core.patterns import MAX_PATTERN, MAX_TEXT, compile_pattern

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "a" * 30 + "!"  # 2**30 paths for a backtracking engine: hours


def finishes(code: str, *, seconds: float = 60.0) -> str:
    """Run ``code`` in a fresh interpreter; its output, or fail if it does not end in time.

    A subprocess, not a thread: a backtracking match holds the GIL, so a thread's timeout
    would wait for it. The bound is generous on purpose: it detects a hang, not a slowdown.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {seconds} s (catastrophic backtracking?)")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_catastrophic_pattern_on_a_hostile_value_finishes() -> None:
    out = finishes(f"""
        from charter.core.patterns import compile_pattern
        for full in (True, False):
            pattern = compile_pattern("^(a|a)+$", full=full)
            print(pattern.matches({HOSTILE!r}), pattern.matches("a" * 30))
        print(compile_pattern("(x+x+)+y", full=False).matches("x" * 5000))
    """)
    assert out.split() == ["False", "True", "False", "True", "False"]


# -- the same meaning as Python's re -----------------------------------------------------------

AGREE = [
    (r"^[A-Za-z0-9-]{3,40}$", ["acct-C-01", "ab", "x" * 41, "acct-1\n", ""]),
    (r"^\w+$", ["café", "\u0661\u0662\u0663", "naïve_x", "a b", "a-b"]),  # Unicode \w, as in Python
    (r"\d{3}", ["\u0661\u0662\u0663", "12", "x123y"]),  # Arabic-Indic digits are \d in Python
    (r"[^\W\d_]+", ["abc", "ab1", "é"]),
    (r"\s+", [" \u00a0\u3000", "\x0b", "\x1c", "x"]),  # \v and \x1c are Python spaces
    (r"[\S]+", ["ab", "a b"]),
    (r"a\Z", ["a", "a\n", "ba"]),
    (r"a{,3}", ["", "aaa", "aaaa", "a{,3}"]),
    (r"\u00e9\x41\N{LATIN SMALL LETTER A}\101\0", ["éAaA\x00", "eAaA\x00"]),
    (r"[\101-\103]+", ["ABC", "D"]),
    (r"[]a]+", ["]a", "b"]),
    (r"[[:alpha:]]", ["[", ":", "a", "b", "]"]),  # Python: a set of [ : a l p h, then ]
    (r"[\]\-x]", ["]", "-", "x", "y"]),
    (r"(?i)kelvin", ["KELVIN", "kElViN"]),
    (r"a.b", ["a\nb", "axb"]),
    (r"(?s)a.b", ["a\nb"]),
    (r"(?m)^b$", ["a\nb", "b\nc", "b"]),
    (r"x$", ["x", "x\n", "x\n\n", "xy"]),  # searching: $ also before a final newline
    (r"(?P<id>T-\d+)!", ["T-12!", "T-!"]),
    (r"a\.b\\c", ["a.b\\c", "axb\\c"]),
    (r"(?#a comment)ab", ["ab"]),
    (r"[\b]", ["\b", "b"]),
    (r"^(a|a)+$", ["aaaa", "aab"]),
    (r"colou?r|grey", ["color", "gray", "grey"]),
]


@pytest.mark.parametrize(("pattern", "texts"), AGREE, ids=[p for p, _ in AGREE])
@pytest.mark.parametrize("full", [True, False], ids=["fullmatch", "search"])
def test_patterns_mean_what_python_re_means(pattern: str, texts: list[str], full: bool) -> None:
    compiled = compile_pattern(pattern, full=full)
    python = re.fullmatch if full else re.search
    for text in texts:
        assert compiled.matches(text) is bool(python(pattern, text)), text


ALPHABET = "aAb1\u0661 _-.\n\t\u00a0é!ß"
PATTERNS = [r"^\w+$", r"\d+\s?\w*$", r"[^\W\d]+\Z", r"(a|b)+\S", r"[a-b]*-?\d{1,2}$", r"\s\S"]


@settings(max_examples=300, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), text=st.text(ALPHABET, max_size=12))
def test_random_texts_match_as_in_python(pattern: str, text: str) -> None:
    for full, python in ((True, re.fullmatch), (False, re.search)):
        assert compile_pattern(pattern, full=full).matches(text) is bool(python(pattern, text))


# -- refused when compiled (that is, when the file is loaded) ---------------------------------


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "cannot run in linear time: it refers back to a group"),
        (r"(?P<x>a)(?P=x)", "cannot run in linear time: it refers back to a group"),
        (r"(?=a)a", "cannot run in linear time: it looks ahead or behind"),
        (r"(?<!x)acct", "cannot run in linear time: it looks ahead or behind"),
        (r"(?>a+)b", "cannot run in linear time (invalid perl operator: (?>)"),
        (r"a*+b", "cannot run in linear time (bad repetition operator: *+)"),
        (r"\bword\b", "uses \\b, which is not supported (RE2's word boundaries are ASCII"),
        (r"(?x) a b", "uses the verbose flag (?x), which is not supported"),
        (r"(?a)\w+", "uses the ASCII flag (?a), which is not supported"),
        (r"a{2000}", "is too large to run in linear time"),
        (r"([a-z", "is not a valid regular expression: unterminated character set"),
        ("a" * (MAX_PATTERN + 1), f"is {MAX_PATTERN + 1} characters long; at most"),
    ],
    ids=[
        "backreference",
        "named-backreference",
        "lookahead",
        "lookbehind",
        "atomic-group",
        "possessive",
        "word-boundary",
        "verbose-flag",
        "ascii-flag",
        "huge-repeat",
        "syntax",
        "too-long",
    ],
)
def test_a_pattern_that_cannot_run_safely_is_refused_saying_why(pattern: str, reason: str) -> None:
    with pytest.raises(PatternInvalid) as caught:
        compile_pattern(pattern, full=True)
    error = caught.value
    assert str(error).startswith(f"pattern {pattern!r} {reason}")
    assert (error.pattern, error.code) == (pattern, "pattern_invalid")
    assert isinstance(error, UserError)
    assert isinstance(error, ValueError)


def test_a_refused_pattern_prints_nothing_to_stderr() -> None:
    # RE2 logs its parse errors to stderr by default; the error is ours to report.
    out = finishes("""
        import sys
        from charter.core.patterns import compile_pattern
        from charter.core.errors import PatternInvalid
        try:
            compile_pattern("a*+", full=True)
        except PatternInvalid:
            print("refused")
    """)
    assert out == "refused"


# -- what the texts may be ---------------------------------------------------------------------


def test_a_text_too_long_or_not_valid_unicode_does_not_match() -> None:
    anything = compile_pattern(r"(?s).*", full=True)
    assert anything.matches("x" * MAX_TEXT)
    assert not anything.matches("x" * (MAX_TEXT + 1))
    assert not anything.matches("a\ud800b")  # a lone surrogate


def test_a_pattern_is_compiled_once() -> None:
    assert compile_pattern(r"^T-\d+$", full=True) is compile_pattern(r"^T-\d+$", full=True)
    assert compile_pattern(r"^T-\d+$", full=True) is not compile_pattern(r"^T-\d+$", full=False)
