"""Where the shared real data is and whether its absence fails the tests: conftest.py's `data_dir` reads it, and
tests/unit checks it (tests/ is on pytest's pythonpath)."""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# Starts the skip reason of every test skipped for want of the shared data; the summary line counts them by it.
MISSING_DATA = "shared data not found"


def shared_data_root() -> Path:
    """The shared real data: OTHERDATA_DATA_DIR when set and not empty, else ../shared/data beside the repo."""
    return Path(os.environ.get("OTHERDATA_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")


def data_required() -> bool:
    """Whether missing data fails the tests instead of skipping them: OTHERDATA_REQUIRE_DATA=1 (.ci/run sets it),
    or CI=true unless OTHERDATA_REQUIRE_DATA=0."""
    required = os.environ.get("OTHERDATA_REQUIRE_DATA", "").strip().lower()
    if required:
        return required not in {"0", "false", "no"}
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
