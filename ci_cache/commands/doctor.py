"""`ci-cache doctor`: check this agent and say what to fix."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from ci_cache import doctor, osapi
from ci_cache.commands import options
from ci_cache.errors import VerifyFailed
from ci_cache.store import Store

name = "doctor"
brief: str | None = "check this agent and explain what to fix"
description = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_store_options(parser, json_output=False)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    cfg = options.load_config(args, env).config
    diagnosis = doctor.diagnose(Store(options.resolve_root(cfg, env)), env, windows=osapi.IS_WINDOWS, config=cfg)
    print(doctor.render(diagnosis))
    if not diagnosis.ok:
        raise VerifyFailed("doctor found problems", hint="see the advice above")
    return 0
