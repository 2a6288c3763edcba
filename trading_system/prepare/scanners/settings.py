"""The scanners' settings, re-exported for scanner authors and the built-ins.

The models live in :mod:`trading_system.config_scanners`, beside ``config``, so that loading the
configuration imports no stage (the import layers in pyproject.toml keep it so).
"""

from trading_system.config_scanners import (
    BUILTIN_PARAMS,
    MODULE_PATTERN,
    BreakoutParams,
    GapParams,
    MomentumParams,
    ScannerEntry,
    TopDollarVolumeParams,
    VolumeParams,
    check_entries,
)

__all__ = ["BUILTIN_PARAMS", "MODULE_PATTERN", "BreakoutParams", "GapParams", "MomentumParams", "ScannerEntry",
           "TopDollarVolumeParams", "VolumeParams", "check_entries"]
