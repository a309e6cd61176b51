"""Shared fixtures: the reference fixture file and small generated data."""
import os
import os.path as osp

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
