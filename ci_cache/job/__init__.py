"""A job's life: setup (claim -> seed -> env) and finish (merge -> prune -> release), one step a module."""

from ci_cache.job.context import NO_TOKEN, TOKEN_VAR, Allocation, Context, FinishResult, effective_mode
from ci_cache.job.env import applied as job_env
from ci_cache.job.lifecycle import finish, setup, setup_or_off

__all__ = ["NO_TOKEN", "TOKEN_VAR", "Allocation", "Context", "FinishResult", "effective_mode", "finish", "job_env",
           "setup", "setup_or_off"]
