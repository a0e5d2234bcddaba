"""Runtime settings are read from the table at most every SETTINGS_CACHE_S per process, except inside a
transaction; a change made in this process applies at once."""

from types import SimpleNamespace

import pytest
from django.db import transaction

from catalog import runtime_settings
from catalog.models import RuntimeSetting
from catalog.runtime_settings import SETTINGS_CACHE_S, forget_settings, get_setting, update_setting

# Transactional: outside a transaction is where the copy is kept.
pytestmark = pytest.mark.django_db(transaction=True)

KEY = "heartbeat_interval_s"  # seeded as 5


class Rollback(Exception):
    pass


@pytest.fixture
def monotonic(monkeypatch):
    """The cache's clock, moved by hand."""
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(runtime_settings, "time", SimpleNamespace(monotonic=lambda: clock.now))
    forget_settings()
    return clock


def test_several_settings_are_read_with_one_query(seed, monotonic, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert get_setting(KEY) == 5
        assert get_setting("orphan_grace_s") == 300
        assert get_setting(KEY) == 5


def test_a_change_made_in_this_process_applies_at_once(seed, monotonic):
    get_setting(KEY)

    update_setting(RuntimeSetting.objects.get(key=KEY), value=7)

    assert get_setting(KEY) == 7


def test_a_change_made_elsewhere_applies_once_the_copy_expires(seed, monotonic):
    get_setting(KEY)
    # Another process's change: no signal reaches this one.
    RuntimeSetting.objects.filter(key=KEY).update(value="9")

    monotonic.now += SETTINGS_CACHE_S - 1
    assert get_setting(KEY) == 5
    monotonic.now += 1
    assert get_setting(KEY) == 9


def test_inside_a_transaction_a_setting_is_read_from_the_table_and_not_kept(seed, monotonic):
    get_setting(KEY)

    with pytest.raises(Rollback), transaction.atomic():
        RuntimeSetting.objects.filter(key=KEY).update(value="9")
        assert get_setting(KEY) == 9
        raise Rollback

    assert get_setting(KEY) == 5


def test_a_setting_without_a_row_reads_its_code_default(db, monotonic):
    assert get_setting("drain_timeout_s") == 300
