"""Private botocore/urllib3 names: all in resilient_aws._compat, checked at import, loud when moved."""

import subprocess
import sys

import botocore
import botocore.paginate
import botocore.retries.standard
import pytest
import urllib3

from resilient_aws import _compat


def test_the_installed_botocore_passes_the_check():
    _compat.check()


@pytest.mark.parametrize(("owner", "name"), [
    (botocore.retries.standard.TransientRetryableChecker, "_TRANSIENT_ERROR_CODES"),
    (botocore.retries.standard.ThrottledRetryableChecker, "_THROTTLED_ERROR_CODES"),
    (botocore.client.BaseClient, "_get_credentials"),
    (urllib3.connection.HTTPConnection, "_new_conn"),
])
def test_a_moved_private_name_is_named_in_a_clear_error(monkeypatch, owner, name):
    monkeypatch.delattr(owner, name)
    with pytest.raises(_compat.IncompatibleBotocore) as info:
        _compat.check()
    message = str(info.value)
    assert name in message
    assert f"botocore {botocore.__version__}" in message and f"urllib3 {urllib3.__version__}" in message


def test_an_attribute_no_longer_set_by_a_constructor_is_named(monkeypatch):
    def init(self, method, pagination_config, model):  # a botocore that renamed _method
        self._operation = method

    monkeypatch.setattr(botocore.paginate.Paginator, "__init__", init)
    with pytest.raises(_compat.IncompatibleBotocore, match=r"Paginator\._method"):
        _compat.check()


def test_importing_resilient_aws_fails_at_import_when_a_name_moved():
    code = ("import botocore.retries.standard as s\n"
            "del s.ThrottledRetryableChecker._THROTTLED_ERROR_CODES\n"
            "import resilient_aws\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "IncompatibleBotocore" in proc.stderr
    assert "ThrottledRetryableChecker._THROTTLED_ERROR_CODES" in proc.stderr
