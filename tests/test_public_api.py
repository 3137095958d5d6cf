"""What the package offers: every type the API hands back can be imported from ``rolloutdb``."""

import inspect
import os
import subprocess
import sys
import types
import typing
from pathlib import Path

import rolloutdb


def types_named_by(annotation) -> set[type]:
    """The classes an annotation names, inside list[...], X | None, and the like."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return {annotation}
    found: set[type] = set()
    for argument in typing.get_args(annotation):
        found |= types_named_by(argument)
    return found


def public_methods(owner) -> list:
    return [member for name, member in inspect.getmembers(type(owner), inspect.isfunction)
            if not name.startswith("_")]


def test_every_type_the_store_api_returns_is_exported(tmp_path):
    with rolloutdb.connect(f"sqlite:///{tmp_path / 'api.db'}") as store:
        owners = [store] + [area for area in vars(store).values()
                            if type(area).__module__.startswith("rolloutdb.store.")]
        returned: set[type] = set()
        for owner in owners:
            for method in public_methods(owner):
                hints = typing.get_type_hints(method)
                returned |= types_named_by(hints.get("return", type(None)))
    ours = {cls for cls in returned if cls.__module__.startswith("rolloutdb")}
    assert len(owners) > 10 and len(ours) > 10  # the walk found the areas and their records
    missing = sorted(cls.__name__ for cls in ours if getattr(rolloutdb, cls.__name__, None) is not cls)
    assert missing == []


def test_the_package_exports_only_what_it_lists():
    # dir(), not vars(): most names are imported on first use (see rolloutdb.__getattr__)
    exported = {name for name in dir(rolloutdb)
                if not name.startswith("_") and not isinstance(getattr(rolloutdb, name), types.ModuleType)}
    assert exported == set(rolloutdb.__all__)



def test_the_subpackages_are_reached_from_the_package_as_before():
    # a fresh interpreter: this one has imported them already
    script = "import rolloutdb; print(rolloutdb.store.DEFAULT_PROJECT, rolloutdb.records.Run.__name__)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(Path(rolloutdb.__file__).parent.parent)})
    assert result.stdout.split() == ["default", "Run"]
