"""No measured figure in prose: durations and scores live in result files and reports rendered from runs.

Recipe comments, the READMEs and ``DemoSettings``' comments may name settings, goals and thresholds ("<= 10 %",
"above 2", "pair_accuracy >= 0.9"), not what a run took or scored ("~9 min", "macro-F1 0.739", "2.61x the seed
spread"): such figures go stale as soon as a recipe changes, and they disagreed with the runs when this test was
written. The allow-list is the part of ``benchmarks/README.md`` that ``benchmarks/report.py`` renders from result
files and its clearly marked historical section.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# a duration: "~9 min", "12.5 minutes", "72 s", "11 min 18 s", "a 15-minute run", "3.7 ms"
DURATION = re.compile(
    r"(?<![\w.])~?\s?\d+(?:[.,]\d+)?\s?-?(?:ms|s|secs?|seconds?|min|mins|minutes?|h|hrs?|hours?)\b", re.IGNORECASE
)
# a score: a metric's name followed (no comparison in between) by a decimal or a percentage: "macro-F1 ~0.6",
# "pair accuracy 0.993", "box IoU of true positives 0.46"; a measured ratio "2.61x"; an approximate share "~60 %"
SCORE = re.compile(
    r"\b(?:macro[- ]?F1|micro[- ]?F1|F1|accuracy|exact match|IoU|ROUGE(?:-L)?|agreement|speedup|gain)"
    r"[^\d<>=\n;]{0,30}?[~-]?\d*\.\d+"
    r"|(?<![\w.])-?\d+\.\d+\s?x\b"
    r"|~\s?\d+(?:\.\d+)?\s?%",
    re.IGNORECASE,
)
RENDERED = re.compile(r"<!-- report\.py: begin.*?<!-- report\.py: end -->", re.DOTALL)
HISTORICAL = re.compile(r"^## Historical, hand-recorded \(not re-rendered\)\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)


def figures(text: str) -> list[str]:
    """The durations and scores stated in ``text``."""
    return [m.group(0).strip() for pattern in (DURATION, SCORE) for m in pattern.finditer(text)]


def _recipe_comments() -> dict[str, str]:
    files = {p.resolve(): p for p in sorted((REPO / "recipes").rglob("*.yaml"))}
    files.update({p.resolve(): p for p in sorted((REPO / "src/synartifact/recipes").rglob("*.yaml"))})
    out = {}
    for real, path in files.items():
        comments = [line.split("#", 1)[1] for line in real.read_text().splitlines() if "#" in line]
        out[str(path.relative_to(REPO))] = "\n".join(comments)
    return out


def _readmes() -> dict[str, str]:
    out = {name: (REPO / name).read_text() for name in ("README.md", "recipes/README.md")}
    bench = (REPO / "benchmarks/README.md").read_text()
    out["benchmarks/README.md (outside the rendered and historical sections)"] = HISTORICAL.sub(
        "", RENDERED.sub("", bench)
    )
    return out


def demo_settings_comments(source: str) -> str:
    """``DemoSettings``' docstring and the comments inside the class."""
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DemoSettings")
    parts = [ast.get_docstring(cls) or ""]
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and cls.lineno <= tok.start[0] <= cls.end_lineno:
            parts.append(tok.string)
    return "\n".join(parts)


def _sources() -> dict[str, str]:
    settings = (REPO / "src/synartifact/demo/settings.py").read_text()
    return {
        **_recipe_comments(),
        **_readmes(),
        "src/synartifact/demo/settings.py (DemoSettings)": demo_settings_comments(settings),
    }


@pytest.mark.parametrize("name", sorted(_sources()))
def test_no_duration_or_score_in_prose(name):
    found = figures(_sources()[name])
    assert not found, f"{name} states measured figures in prose (render them from a run instead): {found}"


@pytest.mark.parametrize(
    "text",
    [
        "~9 min on 2 cores",
        "takes 10 minutes",
        "pre-trained ~2.5 min",
        "12.5 minutes",
        "in 11 min 18 s",
        "the 15-minute demo",
        "macro-F1 ~0.6 on the held-out split",
        "macro-F1 0.7",
        "its pair accuracy is 0.993",
        "box IoU of true positives 0.46",
        "gains 2.61x the seed spread",
        "clipped ~60 % of the samples",
        "~2 s per image and round",
    ],
)
def test_the_pattern_finds_figures(text):
    assert figures(text), text


@pytest.mark.parametrize(
    "text",
    [
        "pair_accuracy >= 0.9 means the reward ranks a clean image higher",
        "both above 2: a gain beyond seed noise",
        "32 samples an epoch, 8 steps per sample, 64 px",
        "LoRA rank 4, lr 3e-4, guidance 5, eta 1",
        "the LLaVA classifier shares the GPU (~15 GB)",
        "learning_rate: 1.0e-2",
        "up to 5 % of a side",
        "goal: overhead <= 10 %",
    ],
)
def test_the_pattern_leaves_settings_and_thresholds(text):
    assert not figures(text), figures(text)


def test_allow_list_is_only_the_rendered_and_historical_sections():
    text = "# B\n\nprose\n\n<!-- report.py: begin x -->\n| 9 min |\n<!-- report.py: end -->\n\nmore prose ~3 min\n"
    text += "\n## Historical, hand-recorded (not re-rendered)\n\n| 12 min 39 s |\n\n## Next\n\nafter 5 min\n"
    left = HISTORICAL.sub("", RENDERED.sub("", text))
    assert figures(left) == ["~3 min", "5 min"]


def test_demo_settings_comments_are_read():
    source = (
        "import os\n# 1 min outside the class\n@dataclass\nclass DemoSettings:\n"
        '    """Fits 2 cores (~3 min)."""\n\n    n: int = 1  # about 4 minutes\n\nX = 1  # 5 min after\n'
    )
    assert figures(demo_settings_comments(source)) == ["~3 min", "4 minutes"]
