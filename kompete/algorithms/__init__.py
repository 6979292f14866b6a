"""Algorithms: each one registered unit that owns its config section, networks, objective, data and writer.

This module is torch-free: it holds only the specs, so reading a YAML never imports torch. A spec names
the `train.model` values it serves, its config section (a dataclass under the YAML key `spec.name`), the
kind of output it makes (`generate` from noise, `translate` photos) and, through `task_class()`, its torch
implementation, imported only when something is trained or generated.

Every subpackage of kompete.algorithms registers one spec on import; `specs()` imports them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from kompete.errors import ConfigError
from kompete.registry import Registry, import_submodules
from kompete.schema import joined

ALGORITHMS: Registry = Registry("algorithm")


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str  # the algorithm and the YAML key of its config section
    task: str  # the kind of output: "generate" (noise -> images) or "translate" (photos -> paintings)
    section: type  # the config section's dataclass
    models: dict[str, dict[str, Any]]  # train.model values -> section defaults that model implies
    task_class: Callable[[], type]  # imports and returns the Task (torch); called only when training/generating
    options: dict[str, type] = field(default_factory=dict)  # train.model -> dataclass of that network's own
    # keys, which join the section (another network's key set away from its default is an error)
    losses: tuple[str, ...] = ()  # train.loss values it accepts, the first the default; () = any registered loss
    ignores: tuple[str, ...] = ()  # train keys it does not read: setting one in a YAML is an error
    summary: str = ""
    # torch-free checks between the section's keys: (key, what is wrong) or None, e.g. cut's nce_blocks
    check: Callable[[Any], tuple[str, str] | None] = lambda section: None
    # a competition and `--set` overrides for a tiny run (seconds on a CPU): tests/test_algorithm_contract.py
    # trains, resumes and generates with it, for every registered algorithm
    tiny: tuple[str, ...] = ()

    def section_for(self, model: str) -> type:
        """The section's dataclass for `model`: the shared keys plus that network's own options."""
        return joined(self.section, self.options.get(model))

    def any_section(self) -> type:
        """The section with every network's options: what another algorithm's section is checked against."""
        return joined(self.section, *self.options.values())


def register(spec: AlgorithmSpec) -> AlgorithmSpec:
    return ALGORITHMS.register(spec.name)(spec)


def specs() -> list[AlgorithmSpec]:
    """Every registered algorithm (importing each subpackage registers it)."""
    import_submodules(__name__, __path__, packages_only=True)
    return [ALGORITHMS.get(n) for n in ALGORITHMS.names()]


def model_names() -> list[str]:
    return sorted(m for s in specs() for m in s.models)


def spec_for_model(model: str, origin: str = "") -> AlgorithmSpec:
    """The algorithm that trains `train.model`; an unknown name lists the valid ones."""
    for spec in specs():
        if model in spec.models:
            return spec
    where = f"{origin}: " if origin else ""
    raise ConfigError(f"{where}'train.model' is {model!r}; choose one of: {', '.join(model_names())}")


def section_names() -> set[str]:
    return {s.name for s in specs()}
