"""tools/benchmark.py on a tiny custom arch: table, JSON and ratios agree (no timing checks)."""
import importlib.util
import json
import os.path as osp

import pytest
import torch

from conftest import REPO

TINY_ARCH = json.dumps(dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64))
VARIANTS = ('vit', 'locat', 'dense')


def load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_tool',
                                                  osp.join(REPO, 'tools', 'benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return load_tool()


def test_table_and_json_agree(tool, tmp_path, capsys):
    out_file = tmp_path / 'bench.json'
    threads = torch.get_num_threads()
    try:
        report = tool.main([
            '--arch', TINY_ARCH, '--img-size', '64', '96', '--batch-size', '2', '1',
            '--device', 'cpu', '--threads', '1', '--repeats', '1', '--warmup', '0', '--json',
            str(out_file)
        ])
    finally:
        torch.set_num_threads(threads)
    assert json.loads(out_file.read_text()) == report
    assert report['device'] == 'cpu' and report['gaug_impl'] == 'auto'
    assert report['threads'] == 1
    rows = report['results']
    assert [(r['arch'], r['img_size'], r['batch_size'], r['grid']) for r in rows] == [
        ('d32-L2-h2', 64, 2, [4, 4]), ('d32-L2-h2', 96, 1, [6, 6])]
    for row in rows:
        for key in ('train_time_s', 'infer_time_s', 'train_memory_mib'):
            assert set(row[key]) == set(VARIANTS)
            assert all(value > 0 for value in row[key].values())
        assert row['train_time_ratio'] == pytest.approx(
            row['train_time_s']['locat'] / row['train_time_s']['vit'])
        assert row['infer_time_ratio'] == pytest.approx(
            row['infer_time_s']['locat'] / row['infer_time_s']['vit'])
        assert row['train_memory_ratio'] == pytest.approx(
            row['train_memory_mib']['locat'] / row['train_memory_mib']['vit'])
        assert row['dense_speedup'] == pytest.approx(
            row['train_time_s']['dense'] / row['train_time_s']['locat'])

    lines = capsys.readouterr().out.splitlines()
    header = lines.index(next(line for line in lines if line.lstrip().startswith('arch')))
    for row, line in zip(rows, lines[header + 1:header + 1 + len(rows)]):
        cells = line.split()
        assert cells[:3] == [row['arch'], str(row['img_size']), str(row['batch_size'])]
        printed = [float(cell) for cell in cells[3:]]
        expected = [row['train_time_s'][v] * 1e3 for v in VARIANTS]
        expected += [row['infer_time_s'][v] * 1e3 for v in VARIANTS]
        expected += [row['train_memory_mib'][v] for v in VARIANTS]
        expected += [row[key] for key in ('train_time_ratio', 'infer_time_ratio',
                                          'train_memory_ratio', 'dense_speedup')]
        expected += [row[key][v] for key in ('train_images_per_s', 'infer_images_per_s')
                     for v in ('vit', 'locat')]
        assert printed == pytest.approx(expected, abs=0.051)


def test_cpu_peak_memory_counts_live_tensor_bytes(tool):
    """The profiler-based CPU peak: 2 live 4-MiB tensors at most, whatever malloc keeps."""

    def step():
        a = torch.ones(1 << 20)  # 4 MiB
        b = a * 2  # 8 MiB live
        del a
        c = b + 1  # 8 MiB live again, not 12
        return c.sum()

    assert tool.peak_step_bytes(step, torch.device('cpu')) == pytest.approx(8 << 20, rel=1e-3)


@pytest.mark.parametrize('given,want', [(None, [8, 2, 2]), ([4], [4, 4, 4]),
                                        ([1, 2, 3], [1, 2, 3])])
def test_batch_size_per_image_size(tool, given, want):
    assert tool.batch_sizes([224, 512, 384], given) == want


def test_wrong_number_of_batch_sizes_is_refused(tool, capsys):
    with pytest.raises(SystemExit):
        tool.parse_args(['--img-size', '224', '512', '--batch-size', '1', '2', '3'])
    assert 'one per --img-size' in capsys.readouterr().err


def test_cuda_batch_sizes_are_training_sized(tool):
    assert tool.batch_sizes([224, 512], None, 'cuda') == [128, 8]


def test_amp_runs_the_step_under_autocast(tool):
    seen = []

    class Probe(torch.nn.Module):

        def forward(self, x):
            seen.append((torch.is_autocast_enabled('cpu'), torch.get_autocast_dtype('cpu')))
            return (x.mean(dim=(2, 3)), )

    images = torch.randn(1, 3, 4, 4, requires_grad=True)
    tool.train_step(Probe(), images, 'bf16')()
    tool.infer_step(Probe(), images, 'fp16')()
    tool.train_step(Probe(), images)()
    assert seen[:2] == [(True, torch.bfloat16), (True, torch.float16)]
    assert not seen[2][0]
