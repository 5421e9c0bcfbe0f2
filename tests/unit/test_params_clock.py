"""Every study's params file states its clock: a measured wall time with its host class and precision, or that it
was not measured and where a run records it (issue 29's "book's clock")."""
from pathlib import Path

PARAMS = Path(__file__).resolve().parents[2] / "params"
STUDY_FILES = sorted([*PARAMS.glob("study_*.yaml"), PARAMS / "monitoring_blitzer.yaml", PARAMS / "routing_banking.yaml"])


def clock_text(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("# Clock:")), None)
    assert start is not None, f"{path.name} has no '# Clock:' line"
    text = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("# ") or line.startswith("# Clock:"):
            break
        text.append(line)
    return " ".join(line[2:] for line in text)


def test_every_study_params_file_states_its_clock_with_host_and_precision_or_says_it_was_not_measured():
    assert len(STUDY_FILES) >= 15
    for path in STUDY_FILES:
        text = clock_text(path)
        if "not measured" in text:
            assert "clock.json" in text, path.name
        else:
            assert "min" in text and "cores" in text, path.name
            assert "fp32" in text or "bf16" in text, path.name
