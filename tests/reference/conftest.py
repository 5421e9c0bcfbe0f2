"""nbval's reference notebooks under pytest-xdist (`make test`): a folder is one CI-size run whose notebooks read what
the one before wrote (runs/_reference/<folder>), so each folder's cells go to one worker, in order; the folders write
separate run folders, so two of them run at once. (xdist's own `--dist loadgroup` would do this with marks, but
xdist 3.8 renames the items' ids in a way pytest 9 no longer reads, and its groups come out empty.)"""


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ReferenceFolders(LoadScopeScheduling):
        """One unit of work per reference folder (tests/reference/ci/01_data.ipynb::Cell 4 -> tests/reference/ci);
        any other test, one per file, as pyproject's --dist loadfile."""

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path.rpartition("/")[0] if path.endswith(".ipynb") else path

    return ReferenceFolders(config, log)
