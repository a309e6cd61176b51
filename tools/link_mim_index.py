"""Lets mim read this project's model index from an editable install (``mim search locat_mm``).

    python tools/link_mim_index.py        # after `pip install -e .` (tools/setup_env.sh runs it)

mim 0.3.9 looks for ``<where the package's metadata is>/locat_mm/.mim/model-index.yml``
(``mim.utils.get_installed_path``: the distribution's location joined with the package name).
A regular install has the package there. An editable install as pip makes it today (PEP 660)
keeps the metadata (``locat_mm-*.dist-info``) in site-packages and the code in the checkout,
reached through an import hook, so mim looks in ``site-packages/locat_mm``, which does not
exist: ``FileNotFoundError: .../site-packages/locat_mm/model-index.yml or ...model_zoo.yml is
not found``. (The old ``setup.py develop`` installs mim was written for put the metadata in the
checkout.)

This links ``site-packages/locat_mm`` to the checkout's package: the same files the import hook
loads, so Python imports them as before, and mim finds ``.mim`` (whose own links lead to
``configs/`` and ``model-index.yml``). It does nothing for a regular install, or when the link
is already there; ``--remove`` takes it away (before ``pip uninstall locat_mm``).
"""
import argparse
import json
import os
import os.path as osp
import sys
from importlib import metadata
from typing import Optional, Sequence

PACKAGE = 'locat_mm'
SOURCE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), PACKAGE)


def editable_location(site: Optional[str] = None) -> Optional[str]:
    """The folder holding locat_mm's installed metadata when the install is editable, else None.

    Args:
        site (str, optional): Look only there (default: this interpreter's ``sys.path``).
    """
    found = metadata.distributions(name=PACKAGE, path=[site] if site else sys.path)
    dist = next(iter(found), None)
    if dist is None:
        return None
    direct_url = dist.read_text('direct_url.json')
    if not direct_url or not json.loads(direct_url).get('dir_info', {}).get('editable'):
        return None
    return str(dist.locate_file(''))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--site', help='the folder with the installed metadata (default: found '
                        'on sys.path)')
    parser.add_argument('--remove', action='store_true', help='remove the link')
    args = parser.parse_args(argv)
    location = editable_location(args.site)
    if location is None:
        print(f'{PACKAGE} is not installed in editable mode here: nothing to link')
        return 0
    link = osp.join(location, PACKAGE)
    if args.remove:
        if osp.islink(link):
            os.remove(link)
            print(f'removed {link}')
        return 0
    if osp.lexists(link):
        if osp.realpath(link) != osp.realpath(SOURCE):
            print(f'error: {link} exists and is not {SOURCE}', file=sys.stderr)
            return 1
        return 0
    os.symlink(SOURCE, link)
    print(f'linked {link} -> {SOURCE} (mim reads the model index there)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
