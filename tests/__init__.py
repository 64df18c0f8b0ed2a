"""The test suite; its shared helpers have their asserts rewritten by pytest, as test modules do."""

import pytest

pytest.register_assert_rewrite("tests.helpers")
