"""The version matrix: the whole suite on the oldest and the newest botocore that pyproject allows.

Why: resilient_aws reaches into botocore's endpoint loop and a few private names (``_compat.py``);
a bound in pyproject is only honest if the suite has run at both of its ends. ``make test`` runs the
newest in the project's own venv; ``make matrix`` (and CI) runs every session here, each in a fresh
venv. ``nox -s urllib3_1_26_refused`` shows that an install pinned to urllib3 1.26 is refused by the
declared bound rather than failing later at import.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

#: The lower bounds declared in pyproject.toml (``botocore>=1.36``, extra ``redis>=5.0``); keep them equal.
OLDEST_BOTOCORE = "1.36.0"
OLDEST_REDIS = "5.0.0"


@nox.session(python=False, name="tests")
@nox.parametrize("botocore", ["oldest", "newest"])
def tests(session: nox.Session, botocore: str) -> None:
    """The suite against one end of the botocore range."""
    venv = f".nox/tests-{botocore}"
    session.run("python3", "-m", "venv", venv, external=True)
    py = f"{venv}/bin/python"
    session.run(py, "-m", "pip", "install", "-q", "--upgrade", "pip", external=True)
    pins = [f"botocore=={OLDEST_BOTOCORE}", f"redis=={OLDEST_REDIS}"] if botocore == "oldest" else ["--upgrade"]
    session.run(py, "-m", "pip", "install", "-q", "-e", ".[test]", *pins, external=True)
    session.run(py, "-c", "import botocore, urllib3; print('botocore', botocore.__version__, "
                "'urllib3', urllib3.__version__)", external=True)
    session.run(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *session.posargs, external=True)


@nox.session(python=False, name="urllib3_1_26_refused")
def urllib3_1_26_refused(session: nox.Session) -> None:
    """pip must refuse resilient-aws with urllib3 1.26 (the declared bound), not install a broken mix."""
    venv = ".nox/urllib3-1.26"
    session.run("python3", "-m", "venv", venv, external=True)
    py = f"{venv}/bin/python"
    result = session.run(py, "-m", "pip", "install", "-q", "--dry-run", ".", "urllib3==1.26.*",
                         external=True, success_codes=[0, 1], silent=True)
    if "ResolutionImpossible" not in (result or "") and "conflict" not in (result or "").lower():
        session.error(f"pip did not refuse urllib3 1.26:\n{result}")
    session.log("refused, as declared: resilient-aws needs urllib3>=2")
