"""The compiled CPU passes of the factored attention, and the ATen path that stands in for them."""
import importlib
import subprocess
import sys

import pytest
import torch

import locat_mm.ops.factored as attention
from locat_mm.ops.cpu import blocked
from locat_mm.layers import GaussianAugmentation
from locat_mm.ops import gaug_attention
from locat_mm.ops.cpu import extension_name, fused_cpu_ops

from conftest import REPO
from spec_reference import spec_attention
from test_fast_path import assert_all_close

# The module (``locat_mm.ops.gaug_attention`` the attribute is the function of that name).
operator = importlib.import_module('locat_mm.ops.gaug_attention')


def test_extension_builds_here():
    """On the machines this project runs on (x86-64, gcc) the fused passes must be there."""
    assert fused_cpu_ops(torch.zeros(1)) is not None
    assert fused_cpu_ops(torch.zeros(1, dtype=torch.float64)) is None


def test_extension_name_carries_a_source_hash():
    """Worktrees with other sources share ~/.cache/torch_extensions: never the same name."""
    name = extension_name()
    assert name.startswith('locat_gaug_cpu_') and len(name) == len('locat_gaug_cpu_') + 12
    assert fused_cpu_ops(torch.zeros(1)).__name__ == name


def spread_gaug(seed: int) -> GaussianAugmentation:
    """GAug of a model built for 224 px with weights of scale 2: varied, peaked biases."""
    torch.manual_seed(seed)
    gaug = GaussianAugmentation(16, (14, 14))
    with torch.no_grad():
        for p in gaug.parameters():
            p.normal_(0, 2.0)
    return gaug


def outputs_and_grads(run, leaves, gaug: GaussianAugmentation, upstream: torch.Tensor) -> list:
    """``run()``'s output and the gradients of ``(out * upstream).sum()`` w.r.t. ``leaves`` and
    GAug's parameters."""
    for t in (*leaves, *gaug.parameters()):
        t.grad = None
    out = run()
    (out * upstream).sum().backward()
    return [out.detach().float()] + [t.grad.clone() for t in (*leaves, *gaug.parameters())]


def sdpa_calls(monkeypatch) -> list:
    """Records the ATen path's masked scaled-dot-product calls (one per chunk of scores): the
    (images, heads, query rows) of each chunk's queries."""
    calls, sdpa = [], attention.F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(tuple(args[0].shape[:3]))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(attention.F, 'scaled_dot_product_attention', spy)
    return calls


# The ATen forward's chunks by the rule of ``factored._chunks``: a budget of
# max(chunk, ceil(B * heads * L * L / _MAX_CHUNKS)) scores per chunk (_MAX_CHUNKS = 64); whole
# images while heads * L * L fits it (budget // (heads * L * L) images a chunk), else whole heads
# of one image while L * L fits (budget // (L * L) heads a chunk), else blocks of budget // L rows
# of one head. Each chunk below is (images, heads, query rows); L = prefix + H * W.
CHUNK_CASES = {
    # L = 55: all 2 * 2 * 55^2 = 12100 scores fit 2^20: one chunk, the whole batch.
    'all_at_once': ((6, 9), 1, 2, 2, 1 << 20, [(2, 2, 55)]),
    # L = 35, one image 2 * 35^2 = 2450, budget 4900 (>= 7350 / 64): 2 images a chunk, the
    # last chunk the third image alone.
    'images': ((5, 7), 0, 3, 2, 4900, [(2, 2, 35), (1, 2, 35)]),
    # L = 26, one head 676, one image 3 * 676 = 2028 > budget 1352 (>= 4056 / 64): 2 heads a
    # chunk, then the third head alone, per image.
    'heads': ((4, 6), 2, 2, 3, 1352, [(1, 2, 26), (1, 1, 26)] * 2),
    # L = 29, one head 841 > budget 87 (>= ceil(3364 / 64) = 53): blocks of 87 // 29 = 3 rows,
    # ten per head (the last 2 rows); the first block is prefix rows alone, the second
    # straddles the prefix and the patches (P = 5).
    'rows': ((3, 8), 5, 2, 2, 87, ([(1, 1, 3)] * 9 + [(1, 1, 2)]) * 4),
    # L = 89, chunk 356 (4 rows) below ceil(31684 / 64) = 496: the budget is raised to 496,
    # blocks of 496 // 89 = 5 rows, 18 per head (the last 4 rows), 72 chunks and not 92.
    'rows_raised_to_max_chunks': ((8, 11), 1, 2, 2, 356, ([(1, 1, 5)] * 17 + [(1, 1, 4)]) * 4),
}


@pytest.mark.parametrize('grid,prefix,batch,heads,chunk,chunks', list(CHUNK_CASES.values()),
                         ids=list(CHUNK_CASES))
def test_aten_path_matches_spec(monkeypatch, grid, prefix, batch, heads, chunk, chunks):
    """The ATen path (no compiled passes), chunked forward and backward, equals SPEC's formula
    in float64 (tests/spec_reference.py), values and every gradient."""
    assert attention._MAX_CHUNKS == 64, 'the expected chunks above were derived for 64'
    monkeypatch.setattr(operator, 'fused_cpu_ops', lambda *tensors: None)
    monkeypatch.setattr(attention, '_CHUNK_ELEMENTS', chunk)
    monkeypatch.setattr(attention, '_FORWARD_CHUNK_ELEMENTS', chunk)
    gaug = spread_gaug(grid[1] + prefix)
    length = prefix + grid[0] * grid[1]
    q, k, v = (torch.randn(batch, heads, length, 16, requires_grad=True) for _ in range(3))
    upstream = torch.randn(batch, heads, length, 16)
    calls = sdpa_calls(monkeypatch)
    got = outputs_and_grads(
        lambda: gaug_attention(q, k, v, *gaug(q, grid, prefix), grid, prefix, gaug.eps,
                               gaug.dist_floor), (q, k, v), gaug, upstream)
    assert calls == chunks  # the forward ran in exactly these chunks
    want = outputs_and_grads(lambda: spec_attention(q, k, v, gaug, grid, prefix), (q, k, v),
                             gaug, upstream)
    names = ['output', 'q', 'k', 'v'] + [f'gaug.{n}' for n, _ in gaug.named_parameters()]
    assert_all_close(names, got, want)


@pytest.mark.parametrize('block_rows', [1, 7, 128])
@pytest.mark.parametrize('grid,prefix', [((5, 7), 0), ((4, 6), 1), ((3, 8), 5), ((1, 5), 1)])
def test_blocked_forward_matches_spec(monkeypatch, block_rows, grid, prefix):
    """The fused passes (scores, bias and softmax block by block of query rows) on strided
    q, k, v, with blocks that split the prefix rows and leave a short last block, equal SPEC's
    formula in float64; so do all gradients taken through them."""
    monkeypatch.setattr(blocked, 'FORWARD_BLOCK_ROWS', block_rows)
    monkeypatch.setattr(blocked, 'BACKWARD_BLOCK_ROWS', block_rows)
    gaug = spread_gaug(block_rows + prefix)
    length = prefix + grid[0] * grid[1]
    # Scores spread over about +-40: the softmax's exponentials see a wide range.
    qkv = (torch.randn(2, length, 3, 2, 16) * 3).requires_grad_()
    upstream = torch.randn(2, 2, length, 16)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # strided views, as in the layer
    calls = sdpa_calls(monkeypatch)
    got = outputs_and_grads(
        lambda: gaug_attention(q, k, v, *gaug(q, grid, prefix), grid, prefix, gaug.eps,
                               gaug.dist_floor), (qkv, ), gaug, upstream)
    assert not calls  # the compiled passes ran, not the ATen path
    want = outputs_and_grads(lambda: spec_attention(q, k, v, gaug, grid, prefix), (qkv, ),
                             gaug, upstream)
    names = ['output', 'qkv'] + [f'gaug.{n}' for n, _ in gaug.named_parameters()]
    assert_all_close(names, got, want)


def test_build_tool_builds_the_packages_extension_with_torch_alone():
    """``tools/build_kernels.py`` (``make env`` runs it beside pip, before the toolboxes are
    installed) prints the extension the package loads, importing neither locat_mm nor a
    toolbox."""
    code = (
        'import sys; sys.path.insert(0, "tools"); import build_kernels; '
        'status = build_kernels.main(); '
        'print(sorted(m for m in sys.modules if m.split(".")[0] in '
        '("locat_mm", "mmengine", "mmcv", "mmseg", "mmpretrain"))); sys.exit(status)')
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [extension_name(), '[]'], result.stdout
