"""Installs locat_mm, the OpenMMLab implementation of the Locality-Attending ViT."""
import os.path as osp

from setuptools import find_packages, setup


def read_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>.txt`` without comments."""
    path = osp.join(osp.dirname(__file__), 'requirements', name)
    with open(path) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


def read_version() -> str:
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'locat_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='locat_mm',
    version=read_version(),
    description='Locality-Attending Vision Transformer (LocAtViT) for MMPretrain and '
    'MMSegmentation',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'configs', 'tools')),
    # The fused CPU attention passes are compiled from source on first use.
    package_data={'locat_mm': ['ops/cpu/*.cpp']},
    python_requires='>=3.10',
    install_requires=read_requirements('runtime.txt'),
    extras_require={'tests': read_requirements('tests.txt')},
    license='Apache-2.0',
)
