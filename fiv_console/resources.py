"""Where the project's non-Python files live: migrations, templates and static assets.

In the checkout they sit at its top, beside the package, as the design fixes the layout; a built wheel
carries them inside the package (`fiv_console/sql`, ...: the mapping is in pyproject.toml). The folder inside
the package wins when it is there, so an installed wheel serves its own copies, while a checkout (an
editable install, or the tests run from it) serves the files being edited.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _folder(name: str) -> Path:
    installed = PACKAGE_DIR / name
    return installed if installed.is_dir() else PACKAGE_DIR.parent / name


SQL_DIR = _folder("sql")
TEMPLATES_DIR = _folder("templates")
STATIC_DIR = _folder("static")
