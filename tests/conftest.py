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
    return torch.load(REFERENCE_FIXTURE, weights_only=False)
