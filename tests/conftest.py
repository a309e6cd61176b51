"""Shared fixtures: the reference fixture file and small generated data."""
import copy
import ctypes
import gc
import os
import os.path as osp
import sys
from functools import lru_cache

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = os.environ.get('LOCAT_SHARED', osp.join(osp.dirname(REPO), 'shared'))
REFERENCE_FIXTURE = osp.join(SHARED, 'fixtures', 'locatvit_reference_small.pt')


@pytest.fixture(scope='session')
def reference_fixture():
    """The authors' reference outputs for seeded weights (see shared/fixtures/README.md)."""
    import torch
    if not osp.isfile(REFERENCE_FIXTURE):
        pytest.fail(f'reference fixture missing: {REFERENCE_FIXTURE} (set LOCAT_SHARED)')
    return torch.load(REFERENCE_FIXTURE, weights_only=True)


@pytest.fixture(scope='session')
def session_default_scopes():
    """mmengine's default scopes as the session started (before any fixture ran a Runner)."""
    from mmengine.registry import DefaultScope
    return dict(DefaultScope._instance_dict)


@pytest.fixture(autouse=True)
def isolated_default_scope(session_default_scopes):
    """Each test starts with the default scope it would have alone.

    A Runner makes its toolbox the process-wide default scope (mmengine's ``DefaultScope``),
    and registries then resolve bare type names there; without this, a test that builds an
    MMPretrain model after an MMSegmentation run would fail or pass by test order. The scopes
    are reset to the session's, before and after each test: a module-scoped fixture that ran
    a Runner must not leave its scope to the tests that follow.
    """
    from mmengine.registry import DefaultScope

    def reset():
        DefaultScope._instance_dict.clear()
        DefaultScope._instance_dict.update(session_default_scopes)

    reset()
    yield
    reset()


@pytest.fixture(autouse=True, scope='session')
def parse_toolbox_metafiles_once():
    """Each ``mmseg::``/``mmpretrain::`` base makes mmengine read every metafile of that
    toolbox's model zoo (150-odd YAML files, about 0.25 s) to look the name up; they do not
    change while the tests run, so each file is read once per session. Tests that run the
    tools in a subprocess read them as a user's run does."""
    import mmengine.config.utils
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mmengine.config.utils, 'load', lru_cache()(mmengine.config.utils.load))
        yield


@lru_cache(maxsize=None)
def _parsed_config(path: str):
    from mmengine.config import Config
    return Config.fromfile(path)


def project_config(path: str):
    """The mmengine ``Config`` at ``path`` (relative to the repository root, or absolute),
    parsed once per session; each call returns a deep copy, since tests edit what they get."""
    return copy.deepcopy(_parsed_config(osp.join(REPO, path)))


# ----------------------------------------------------------------------------- memory
# The whole suite (``make test``) must fit beside other work on a 24 GB machine that CI shares:
# the peak resident set of the pytest process, and of its largest child process, is checked
# against this budget when a session ends (README, "Tests"). One number, in bytes.
PEAK_RSS_BUDGET = 4 * 2**30


def release_freed_memory() -> None:
    """Returns the heap's free memory to the system (glibc's ``malloc_trim``).

    glibc keeps freed blocks below its (adaptive, up to 32 MiB) mmap threshold in the heap,
    and the weight tensors of a large model are such blocks: without this, the memory of every
    model a test built and dropped stays resident and the suite's peak is the sum of a file's
    models, not the largest one. No-op where the C library has no ``malloc_trim``.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


@pytest.fixture(autouse=True)
def _release_memory_after_each_test():
    """Frees what the test dropped, then gives the heap back.

    mmengine and OpenMMLab models hold reference cycles (a module's load hook is a bound
    method of the module), so a dropped model waits for the garbage collector: collect first,
    or the next test's models pile on top of it. Cheap: the collector walks only objects
    created since the test file began (``freeze_survivors``).
    """
    yield
    gc.collect()
    release_freed_memory()


def peak_rss() -> dict:
    """Peak resident set (bytes) of this process and of its largest finished child."""
    import resource
    # Linux reports ru_maxrss in KiB (macOS in bytes; the budget check runs on Linux only).
    return {who: resource.getrusage(getattr(resource, f'RUSAGE_{who.upper()}')).ru_maxrss * 1024
            for who in ('self', 'children')}


def pytest_sessionfinish(session, exitstatus):
    """Fails the session when the pytest process, or one child, exceeded PEAK_RSS_BUDGET.

    Peaks only grow with more tests, so a subset does not fail for memory the whole suite would
    not. The whole suite measured 2.6 GiB (README, "Tests"): the budget is the goal, 4 GiB.
    """
    if not sys.platform.startswith('linux'):
        return
    over = {who: peak for who, peak in peak_rss().items() if peak > PEAK_RSS_BUDGET}
    if over:
        reporter = session.config.pluginmanager.get_plugin('terminalreporter')
        message = ', '.join(f'{who} peaked at {peak / 2**30:.2f} GiB' for who, peak in over.items())
        text = (f'memory budget exceeded: {message} > {PEAK_RSS_BUDGET / 2**30:.1f} GiB '
                '(tests/conftest.py PEAK_RSS_BUDGET). Find the test that keeps large models '
                'alive: build, check and drop each one; see README "Tests".')
        if reporter is not None:
            reporter.write_line(text, red=True, bold=True)
        else:
            print(text, file=sys.stderr)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def freeze_survivors() -> None:
    """Moves every object alive now into the garbage collector's permanent generation.

    mmengine's ``BaseDataset`` runs a full ``gc.collect()`` each time a dataset is built, and
    several tests collect after dropping large models; with the million long-lived objects of
    the imported modules (torch, the toolboxes) and of module-level caches each full collection
    took 0.2-0.7 s. Frozen objects are not scanned, so a collection walks only what the running
    test file created. They are still freed by reference counting; only a reference cycle
    among them that becomes garbage later would stay. What survives a test file is
    session-wide state (module-level caches, session fixtures), and the session's peak memory
    check below would show a leak.
    """
    gc.collect()
    gc.freeze()


def pytest_collection_finish(session):
    freeze_survivors()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield  # the test's fixtures, and its module's at the file's last test, are finalised
    module = getattr(item, 'module', None)
    if nextitem is None or getattr(nextitem, 'module', None) is not module:
        freeze_survivors()
