"""--report-to: the experiment trackers TRL logs to must be installed, which is checked before anything loads."""

from __future__ import annotations

from core.errors import InputError
from training.config import DPORunConfig

REPORT_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}


def reporting_check(config: DPORunConfig) -> None:
    """--report-to passes through to TRL; say which package is missing before anything loads."""
    import importlib.util

    for target in (part.strip() for part in config.report_to.split(",")):
        if target in REPORT_PACKAGES and importlib.util.find_spec(REPORT_PACKAGES[target]) is None:
            raise InputError(
                f"--report-to {target} needs the {REPORT_PACKAGES[target]} package, which is not installed: "
                f"add it to requirements.txt and install it, or use --report-to none."
            )
