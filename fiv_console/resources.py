"""Where the project's non-Python files live: migrations, templates and static assets.

They sit at the top of the checkout (beside the package), as the design fixes the layout; the package is
installed editable (`pip install -e .`) so these paths hold for an installed console script too.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
TEMPLATES_DIR = PROJECT_ROOT / "templates"
STATIC_DIR = PROJECT_ROOT / "static"
