"""Settings from the environment: secrets as Kestra reads them."""

from __future__ import annotations

import base64
import logging

import pytest

from harrier.common.settings import Settings, SettingsError


def test_wrapped_base64_decodes_and_a_broken_secret_logs_one_error(caplog):
    long_value = "v" * 100
    encoded = base64.b64encode(long_value.encode()).decode()
    wrapped = "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
    with caplog.at_level(logging.ERROR):
        settings = Settings.from_env({"SECRET_LONG": wrapped, "SECRET_BAD": "%%%",
                                      "SECRET_OK": base64.b64encode(b"fine").decode()})
    assert settings.secrets == {"LONG": long_value, "OK": "fine"}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "SECRET_BAD" in errors[0]
    assert "%%%" not in errors[0]


def test_the_flow_trigger_claim_idle_time_is_read_and_a_zero_is_refused():
    assert Settings.from_env({}).flow_trigger_claim_idle == 30
    assert Settings.from_env({"HARRIER_FLOW_TRIGGER_CLAIM_IDLE": "3"}).flow_trigger_claim_idle == 3
    with pytest.raises(SettingsError, match="HARRIER_FLOW_TRIGGER_CLAIM_IDLE: expected at least 1"):
        Settings.from_env({"HARRIER_FLOW_TRIGGER_CLAIM_IDLE": "0"})
