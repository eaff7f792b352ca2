"""The service's supervision (app_production/supervision.py): BentoML's private parts it relies on
are checked here, so that a BentoML upgrade fails this test rather than the service."""

from __future__ import annotations

import inspect
from importlib.metadata import version
from pathlib import Path

import pytest

from app_production import supervision


def test_bentoml_still_hard_codes_a_10_s_check_of_its_workers() -> None:
    from bentoml._internal.utils import circus as bentoml_circus

    source = inspect.getsource(bentoml_circus.create_standalone_arbiter)
    assert f'check_delay=kwargs.pop("check_delay", {supervision.BENTOML_CHECK_DELAY_S})' in source
    assert "arbiter_cls = ThreadedArbiter if threaded else Arbiter" in source  # looked up late
    assert version("bentoml") == supervision.WRITTEN_FOR


def test_install_makes_the_arbiter_check_every_half_second() -> None:
    from bentoml._internal.utils import circus as bentoml_circus
    from bentoml._internal.utils.circus import create_standalone_arbiter

    supervision.install()
    supervision.install()  # twice is once
    assert bentoml_circus.Arbiter.kit_check_delay == supervision.CHECK_DELAY_S
    assert bentoml_circus.Arbiter.__mro__[1] is supervision.replaced
    arbiter = create_standalone_arbiter(watchers=[])
    assert arbiter.check_delay == supervision.CHECK_DELAY_S
    assert arbiter.ctrl.check_delay == supervision.CHECK_DELAY_S * 1000


def test_install_refuses_another_bentoml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervision, "WRITTEN_FOR", "0.0.1")
    with pytest.raises(RuntimeError, match=r"written for bentoml 0\.0\.1"):
        supervision.install()


def test_one_worker_serves_and_the_other_takes_over_when_the_lock_is_free(
    tmp_path: Path,
) -> None:
    serving = supervision.ServingLock(tmp_path / "lock")
    standby = supervision.ServingLock(tmp_path / "lock")
    assert serving.try_acquire()
    assert not standby.try_acquire()
    serving._file.close()  # as when the serving worker dies: the kernel frees the lock
    assert standby.try_acquire()


def test_a_refusal_is_written_where_kit_serve_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "refused.txt"
    monkeypatch.setenv(supervision.REFUSAL_FILE_ENV, str(target))
    supervision.refuse_to_serve("model x:v1 cannot be served: sha256 differs")  # no supervisor
    assert target.read_text() == "model x:v1 cannot be served: sha256 differs\n"
