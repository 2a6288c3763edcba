"""The building blocks of every settings model: a strict base and the ranged number types.

Apart from ``config`` so that a stage's own settings (the scanners' entries) can use them
without importing the whole configuration.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: A fraction of a whole in (0, 1] (weights, thresholds, coverage), never a percent.
Fraction = Annotated[float, Field(gt=0, le=1)]
#: A fraction that may be 0 (a switch-off value), in [0, 1].
Fraction0 = Annotated[float, Field(ge=0, le=1)]
#: A count of names or sessions, at least 1.
Count = Annotated[int, Field(ge=1)]
#: Seconds to wait, strictly positive (a zero or negative wait polls forever or crashes).
Seconds = Annotated[float, Field(gt=0)]
#: Dollars that may be 0 (a floor that is off at 0).
Dollars0 = Annotated[float, Field(ge=0)]
#: Score points, in [0, 100].
Points = Annotated[float, Field(ge=0, le=100)]


class Strict(BaseModel):
    # allow_inf_nan=False: ``nan``/``.inf`` in YAML is refused at load for every float,
    # so no guard or wait can be switched off or made endless by a non-finite number.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
