from finops.tests.factories import clock  # noqa: F401 (fixture)
from instances.tests.factories import mock_cloud  # noqa: F401 (fixture)
