"""``smsbot triage eval``: per-batch, first-run, frozen and cross-validated scores."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from smsbot.cli import main

CORPUS = Path(__file__).parents[2] / "corpus"
SECRET = "frozen text that must never be printed, baby lips blue"
FIRST_RUN = {
    "date": "2026-12-03",
    "engine": "abc1234",
    "cases": 4,
    "exact": 0.5,
    "emergency_recall": 0.5,
    "emergencies_sent_home": 1,
    "calm_answered_emergency": 1.0,
    "urgent_sent_home": 0,
}


def cases(*items: tuple[str, str]) -> list[dict[str, str]]:
    return [{"level": level, "lang": "en", "text": text, "why": "test"} for level, text in items]


def write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["triage", "eval", *args])


def small_corpus(root: Path) -> Path:
    write(root / "old_cases.yaml", cases(("routine", "his legs shake when he cries"), ("info", "hi")))
    blind = cases(
        ("emergency", "her lips are blue"),
        ("emergency", "he is not breathing"),
        ("urgent", "she has not had a wet diaper since this morning"),
        ("routine", "her chin quivers when she cries"),
    )
    batch = {"batch": 25, "source": "test", "first_run": FIRST_RUN, "cases": blind}
    write(root / "blind" / "b25.yaml", batch)
    write(root / "frozen" / "b26.yaml", {"batch": 26, "cases": cases(("emergency", SECRET))})
    return root


def section(output: str, title: str) -> list[str]:
    """The lines under ``title`` up to the next title."""
    lines = output.splitlines()
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return lines[start:end]


def test_it_scores_each_batch_beside_its_first_run_and_the_frozen_slice_apart(tmp_path: Path) -> None:
    result = run("--no-cv", "--corpus", str(small_corpus(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "NOT trained on this corpus" in result.output.splitlines()[0]
    old = section(result.output, "old_cases.yaml")
    assert [line.split()[0] for line in old] == ["rules", "rules+model"]
    blind = section(result.output, "blind/b25.yaml")
    first = blind[0].split()
    # first run: cases, recall, sent home, exact, calm→E, urgent sent home, as recorded.
    assert first[:8] == ["first", "run", "4", "0.500", "1", "0.500", "1.000", "0"]
    assert "2026-12-03, engine abc1234" in blind[0]
    rules = blind[1].split()
    assert rules[:3] == ["rules", "4", "1.000"]
    together = section(result.output, "all but frozen")
    assert together[0].split()[:3] == ["first", "run", "4"]
    assert together[1].split()[:2] == ["rules", "6"]
    frozen = section(result.output, "frozen slice (never trained or tuned on)")
    assert frozen[1].split()[:4] == ["rules+model", "1", "1.000", "0"]
    assert SECRET not in result.output
    assert "cross-validated" not in result.output


def test_it_cross_validates_the_model_alone_and_with_the_rules(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "dev_cases.yaml").write_bytes((CORPUS / "dev_cases.yaml").read_bytes())
    result = run("--corpus", str(corpus))
    assert result.exit_code == 0, result.output
    lines = section(result.output, "cross-validated: 5 folds, out of fold, 120 texts")
    assert [line.split()[0] for line in lines] == ["model", "rules", "rules+model"]
    assert all("120" in line.split()[:3] for line in lines)


def test_the_shipped_classifier_is_trained_on_the_corpus_as_it_stands() -> None:
    result = run("--no-cv")
    assert result.exit_code == 0, result.output
    assert "(trained on this corpus)" in result.output.splitlines()[0]


def test_a_malformed_case_names_its_file_and_number(tmp_path: Path) -> None:
    good, bad = {"text": "hi", "level": "info", "lang": "en"}, {"text": "x", "level": "meh"}
    write(tmp_path / "bad.yaml", [good, bad])
    result = run("--no-cv", "--corpus", str(tmp_path))
    assert result.exit_code == 1
    assert "bad.yaml: case 2: 'level' must be one of info, routine, urgent, emergency" in result.output


def test_a_first_run_block_missing_a_score_is_refused(tmp_path: Path) -> None:
    first_run = {k: v for k, v in FIRST_RUN.items() if k != "urgent_sent_home"}
    write(tmp_path / "blind" / "b1.yaml", {"first_run": first_run, "cases": cases(("info", "hi"))})
    result = run("--no-cv", "--corpus", str(tmp_path))
    assert result.exit_code == 1
    assert "b1.yaml: first_run needs date, engine and cases" in result.output
