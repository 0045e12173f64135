"""Where the files Lightbulb ships beside its code live: templates, static files, SQL.

They are package data of ``server`` (``server/templates`` and ``server/sql``),
found through :mod:`importlib.resources`, so the same lookup works in a checkout,
an editable install and an installed wheel. In the repository the two folders
stay at the top (``templates/``, ``sql/``) and ``server/`` holds symbolic links to
them; building the wheel copies their files in as ``server/templates/...`` and
``server/sql/...`` (no top-level ``templates`` or ``sql`` package is installed).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_dir(name: str) -> Path:
    """The folder ``name`` (``"templates"`` or ``"sql"``) shipped with the package.

    Returns a real directory: Jinja's and Flask's loaders read files by path.
    Raises ``FileNotFoundError`` naming the folder when the install lacks it
    (a wheel built without its package data).
    """
    folder = files("server").joinpath(name)
    if not isinstance(folder, Path) or not folder.is_dir():
        raise FileNotFoundError(
            f"server/{name} is missing from this install of lightbulb; reinstall the package"
        )
    return folder


def templates_dir() -> Path:
    """Jinja templates of pages, notices and reports; static files in ``static/``."""
    return data_dir("templates")


def sql_dir() -> Path:
    """The schema, one object per file (``sql/NNN_name.sql``) plus ``grants.sql``."""
    return data_dir("sql")
