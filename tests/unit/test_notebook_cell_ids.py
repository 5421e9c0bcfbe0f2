"""Every notebook's cells carry ids: nbformat warns on each read of one without (a hard error in future versions)."""
import json
from pathlib import Path

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_every_cell_of_every_notebook_has_an_id():
    assert NOTEBOOKS, "no notebooks found"
    missing = {path.name: sum("id" not in cell for cell in json.loads(path.read_text())["cells"])
               for path in NOTEBOOKS}
    assert {name: count for name, count in missing.items() if count} == {}
