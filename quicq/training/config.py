"""Training configs (TOML or JSON): the schema, its validation and the help text generated from it.

Sections (every key has a default except ``train.steps``, which ``quicq train --steps N`` can supply):

* ``[task]`` — what to train: ``name = "digits"`` (a small CNN pretrained on scikit-learn digits
  0–4, adapted to 5–9) or ``"text"`` (a Hugging Face sequence classifier — the offline MiniLM or
  any local model directory — on the offline Rotten Tomatoes snippets or a user CSV with text
  and label columns). Keys that belong to the other task are refused.
* ``[adapter]`` — ``method = "quic"`` or ``"quantum_peft"``; every other key is a field of
  :class:`~quicq.adapters.QuICConfig` / :class:`~quicq.adapters.QuantumPEFTConfig`, checked by
  that class (so the config follows the adapter API without a second list of its fields).
  Missing ``target_modules`` / ``modules_to_save`` / block size come from the task.
* ``[backend]`` — where blocks are estimated (:mod:`quicq.hardware.spec`), shots, retries.
* ``[mitigation]`` — free keys handed by name to the backend's or the tomography's constructor
  (readout mitigation, ZNE, … as those classes define them); an unknown key fails before any job.
  ``magnitudes`` / ``postselect`` here override [backend]'s estimator choice, so the "raw"
  evaluation (without [mitigation]) is the plain default estimator.
* ``[train]`` — steps, gradient, optimizer, learning rates and their schedule (by default the
  accuracy harness's recipe: AdamW, 6% linear warmup, cosine decay to 0), checkpoints, output
  directory, plot.
* ``[eval]`` — what the final evaluation reports (validation and test accuracy with exact blocks;
  blocks estimated on the backend, raw and with the mitigation options).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quicq.hardware.hybrid import GRADIENTS
from quicq.hardware.spec import BACKEND_SPECS, BackendSpecError, parse_backend_spec
from quicq.training.errors import ConfigError
from quicq.training.schedule import SCHEDULES, WARMUP_FRACTION

__all__ = ["CONFIG_SCHEMA", "FREE_SECTIONS", "OPTIMIZERS", "REQUIRED", "TASKS", "TASK_KEYS", "TRAIN_GRADIENTS", "adapter_config",
           "load_config",
           "schema_help", "validate_config"]

#: Gradients of ``train.gradient``: ``exact`` (engine autograd, no backend) and the hardware rules.
TRAIN_GRADIENTS: tuple[str, ...] = ("exact", *GRADIENTS)
#: Optimizers of ``train.optimizer`` (torch.optim classes by these names, lower-cased).
OPTIMIZERS: tuple[str, ...] = ("adamw", "adam")
#: Built-in tasks.
TASKS: tuple[str, ...] = ("digits", "text")

REQUIRED = object()
_NULL = type(None)
_NUM = (int, float)
#: section → key → (type(s), default, help). ``REQUIRED`` marks required keys.
CONFIG_SCHEMA: dict[str, dict[str, tuple[Any, Any, str]]] = {
    "task": {
        "name": (str, "digits", " | ".join(TASKS)),
        "seed": (int, 0, "seed of data split, head init and batches"),
        "train_size": (int, 0, "use at most this many training examples (0: all)"),
        "eval_size": (int, 0, "evaluate on at most this many test examples (0: all)"),
        "batch_size": (int, 32, "examples per step"),
        "threads": (int, 1, "torch intra-op threads"),
        "width": (int, 128, "digits: hidden width of fc1/fc2"),
        "pretrain_epochs": (int, 8, "digits: epochs of pretraining on digits 0–4"),
        "model": (str, "minilm", "text: 'minilm' (offline all-MiniLM-L6-v2) or a local Hugging Face model directory"),
        "data": (str, "rotten_tomatoes", "text: 'rotten_tomatoes' (offline snippets) or a CSV file path"),
        "text_column": (str, "text", "text: CSV column holding the texts"),
        "label_column": (str, "label", "text: CSV column holding the labels"),
        "max_length": (int, 64, "text: tokens per example (longer texts are truncated)"),
        "val_size": (int, 1000, "text: examples held out as validation (never trained on, never tested on)"),
    },
    "adapter": {
        "method": (str, "quic", "quic | quantum_peft; other keys are that adapter config's fields"),
    },
    "backend": {
        "name": (str, "exact", " | ".join(BACKEND_SPECS)),
        "shots": ((int, _NULL), 1024, "shots per circuit (null: exact probabilities, simulators only)"),
        "seed": ((int, _NULL), 1, "seed of the sampler (reproducible runs)"),
        "retries": (int, 3, "attempts per job before a step fails"),
        "retry_delay": (_NUM, 1.0, "seconds before the first retry (doubles each time)"),
        "timeout": ((int, float, _NULL), None, "seconds per job before it counts as failed"),
        "magnitudes": (bool, True, "also measure Z-basis magnitudes (2n circuits per estimate)"),
        "postselect": (bool, True, "drop outcomes outside the Hamming-weight sector / code space"),
    },
    "mitigation": {},
    "train": {
        "steps": (int, REQUIRED, "total optimizer steps"),
        "gradient": (str, "parameter_shift", " | ".join(TRAIN_GRADIENTS)),
        "lr": (_NUM, 0.01, "base learning rate of the adapter parameters"),
        "head_lr": (_NUM, 0.01, "base learning rate of the task head"),
        "lambda_lr_factor": ((int, float, _NULL), None, "quantum_peft: λ's lr = this × lr (null: the library's "
                             "ratio, QuantumPEFTConfig.lr_hint λ/θ)"),
        "optimizer": (str, "adamw", " | ".join(OPTIMIZERS) + " (the accuracy harness's recipe: adamw)"),
        "weight_decay": (_NUM, 0.0, "decoupled weight decay (adamw) / L2 penalty (adam)"),
        "schedule": (str, "cosine", " | ".join(SCHEDULES) + ": lr multiplier per step (cosine: warmup, then cosine to 0)"),
        "warmup": (_NUM, WARMUP_FRACTION, "fraction of the steps spent warming up linearly (schedule = cosine)"),
        "spsa_eps": (_NUM, 0.1, "SPSA perturbation size (radians)"),
        "checkpoint_every": (int, 5, "checkpoint every this many steps"),
        "keep": (int, 2, "checkpoints kept"),
        "out": (str, "out/train", "output directory (checkpoints, adapter, summary.json, plot)"),
        "plot": (bool, True, "write training_curve.png (needs matplotlib)"),
    },
    "eval": {
        "exact": (bool, True, "test accuracy with the engine's exact blocks"),
        "estimated": (bool, True, "test accuracy with blocks estimated once on the backend (with [mitigation])"),
        "raw": (bool, True, "also with blocks estimated without the [mitigation] options (when there are any)"),
        "validation": (bool, True, "validation accuracy with exact blocks (choose lrs on it, never on the test split)"),
    },
}
#: Sections whose keys are not fixed here (checked by the classes they are handed to).
FREE_SECTIONS: tuple[str, ...] = ("adapter", "mitigation")
#: Keys of [task] that only one task uses.
TASK_KEYS: dict[str, tuple[str, ...]] = {
    "digits": ("width", "pretrain_epochs"),
    "text": ("model", "data", "text_column", "label_column", "max_length", "val_size"),
}


def _type_name(t: Any) -> str:
    ts = t if isinstance(t, tuple) else (t,)
    names = {"int": "integer", "str": "string", "bool": "true/false", "float": "number", "list": "list"}
    return " or ".join("null" if x is _NULL else names.get(x.__name__, x.__name__) for x in ts)


def _fail(source: str, key: str, msg: str) -> None:
    raise ConfigError(f"{source}: '{key}' {msg}")


def validate_config(raw: Any, *, source: str = "config", require_steps: bool = True) -> dict[str, dict[str, Any]]:
    """Check a config dict against :data:`CONFIG_SCHEMA`; return it with defaults filled in.

    Raises :class:`ConfigError` naming the bad key (``train.steps``), what was expected and what
    was found. ``require_steps=False`` lets a caller (``quicq train --steps``) supply ``train.steps``.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a table/object with sections {sorted(CONFIG_SCHEMA)}")
    unknown = sorted(set(raw) - set(CONFIG_SCHEMA))
    if unknown:
        raise ConfigError(f"{source}: unknown section {unknown[0]!r}; sections are {sorted(CONFIG_SCHEMA)}")
    out: dict[str, dict[str, Any]] = {}
    for sec, keys in CONFIG_SCHEMA.items():
        given = raw.get(sec, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{source}: [{sec}] must be a table/object, got {type(given).__name__}")
        bad = sorted(set(given) - set(keys))
        if bad and sec not in FREE_SECTIONS:
            raise ConfigError(f"{source}: unknown key '{sec}.{bad[0]}'; keys of [{sec}] are {sorted(keys)}")
        out[sec] = copy.deepcopy({k: v for k, v in given.items() if k not in keys})
        for key, (typ, default, _help) in keys.items():
            if key not in given:
                if default is REQUIRED and (require_steps or (sec, key) != ("train", "steps")):
                    hint = " (or pass --steps N)" if (sec, key) == ("train", "steps") else ""
                    raise ConfigError(f"{source}: missing required key '{sec}.{key}'{hint}")
                out[sec][key] = None if default is REQUIRED else copy.deepcopy(default)
                continue
            val = given[key]
            types = typ if isinstance(typ, tuple) else (typ,)
            if float in types and isinstance(val, float) and not val == val:  # NaN
                _fail(source, f"{sec}.{key}", "must be a number, got NaN")
            if not (isinstance(val, types) and not (isinstance(val, bool) and bool not in types)):
                _fail(source, f"{sec}.{key}", f"must be {_type_name(typ)}, got {val!r}")
            out[sec][key] = val
    _check_values(out, raw, source)
    return out


def _check_values(cfg: dict[str, dict[str, Any]], raw: dict[str, Any], source: str) -> None:
    t, a, b, tr = cfg["task"], cfg["adapter"], cfg["backend"], cfg["train"]
    if t["name"] not in TASKS:
        _fail(source, "task.name", f"must be one of {list(TASKS)}, got {t['name']!r}")
    for task, keys in TASK_KEYS.items():
        if task != t["name"]:
            for key in keys:
                if key in raw.get("task", {}):
                    _fail(source, f"task.{key}", f"applies to the {task!r} task only (task.name is {t['name']!r})")
    for key in ("batch_size", "width", "pretrain_epochs", "threads", "max_length"):
        if t[key] < 1:
            _fail(source, f"task.{key}", f"must be ≥ 1, got {t[key]}")
    for key in ("train_size", "eval_size", "val_size"):
        if t[key] < 0:
            _fail(source, f"task.{key}", f"must be ≥ 0, got {t[key]}")
    from quicq.adapters.config import METHODS

    if a["method"] not in METHODS:
        _fail(source, "adapter.method", f"must be one of {sorted(METHODS)}, got {a['method']!r}")
    from quicq.training.tasks import ADAPTER_DEFAULTS

    adapter_config(a, ADAPTER_DEFAULTS[t["name"]], source=source)
    if b["shots"] is not None and b["shots"] <= 0:
        _fail(source, "backend.shots", f"must be a positive integer (or null for exact probabilities), got {b['shots']}")
    if b["retries"] < 1:
        _fail(source, "backend.retries", f"must be ≥ 1, got {b['retries']}")
    if tr["steps"] is not None and tr["steps"] < 0:
        _fail(source, "train.steps", f"must be ≥ 0, got {tr['steps']}")
    if tr["gradient"] not in TRAIN_GRADIENTS:
        _fail(source, "train.gradient", f"must be one of {list(TRAIN_GRADIENTS)}, got {tr['gradient']!r}")
    for key in ("checkpoint_every", "keep"):
        if tr[key] < 1:
            _fail(source, f"train.{key}", f"must be ≥ 1, got {tr[key]}")
    for key in ("lr", "head_lr", "spsa_eps"):
        if not 0 < tr[key] < float("inf"):
            _fail(source, f"train.{key}", f"must be a finite number > 0, got {tr[key]}")
    f = tr["lambda_lr_factor"]
    if f is not None and not 0 < f < float("inf"):
        _fail(source, "train.lambda_lr_factor", f"must be a finite number > 0 (or null), got {f}")
    for key, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
        if tr[key] not in choices:
            _fail(source, f"train.{key}", f"must be one of {list(choices)}, got {tr[key]!r}")
    if not 0 <= tr["weight_decay"] < float("inf"):
        _fail(source, "train.weight_decay", f"must be a finite number ≥ 0, got {tr['weight_decay']}")
    if not 0 <= tr["warmup"] < 1:
        _fail(source, "train.warmup", f"must be a fraction in [0, 1), got {tr['warmup']}")
    try:
        parse_backend_spec(b["name"])
    except BackendSpecError as exc:
        _fail(source, "backend.name", str(exc))
    for key in ("magnitudes", "postselect"):
        if key in cfg["mitigation"] and not isinstance(cfg["mitigation"][key], bool):
            _fail(source, f"mitigation.{key}", f"must be true/false, got {cfg['mitigation'][key]!r}")
    if cfg["mitigation"] and tr["gradient"] == "exact" and not cfg["eval"]["estimated"]:
        _fail(source, "mitigation", "is set but nothing uses the backend (train.gradient = 'exact', "
                                    "eval.estimated = false)")


def adapter_config(a: Mapping[str, Any], defaults: Mapping[str, Any], *, source: str = "config") -> Any:
    """The adapter config of an ``[adapter]`` table, with the task's defaults for missing keys.

    Fields are checked by the adapter config class itself; its complaint is re-raised naming the key.
    """
    from quicq.adapters import AdapterConfigError
    from quicq.adapters.config import METHODS, config_from_dict

    method = a["method"]
    fields = {k: v for k, v in a.items() if k != "method"}
    known = set(METHODS[method].__dataclass_fields__)
    for k, v in defaults.items():
        if k in known and k not in fields and not (k == "block_size" and "n_blocks" in fields):
            fields[k] = v
    if isinstance(fields.get("orders"), list):
        fields["orders"] = tuple(fields["orders"])
    try:
        return config_from_dict(method, fields)
    except (AdapterConfigError, TypeError) as exc:
        first = str(exc).split(" ", 1)[0]
        key = f"'adapter.{first}'" if first in known else "[adapter]"
        raise ConfigError(f"{source}: {key}: {exc}") from None


def load_config(path: str | Path, *, require_steps: bool = True) -> dict[str, dict[str, Any]]:
    """Read and validate a JSON (``.json``) or TOML (``.toml``) training config."""
    path = Path(path)
    if path.suffix.lower() not in (".toml", ".json"):
        raise ConfigError(f"{path}: config files must end in .json or .toml")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                raise ConfigError("TOML configs need Python ≥ 3.11 or 'pip install tomli'; or use JSON") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    else:
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ConfigError(f"{path}: malformed JSON: {exc}") from None
    return validate_config(raw, source=str(path), require_steps=require_steps)


def _show(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return f'"{v}"'
    return json.dumps(v)


def schema_help() -> str:
    """Every config key with its default and help, generated from :data:`CONFIG_SCHEMA`."""
    lines = []
    for sec, keys in CONFIG_SCHEMA.items():
        lines.append(f"  [{sec}]")
        if sec == "adapter":
            lines.append("    (any field of QuICConfig / QuantumPEFTConfig, e.g. target_modules, block_size, orders,")
            lines.append("     parameterization, block_share, rank; defaults per task)")
        if sec == "mitigation":
            lines.append("    (keys passed by name to the backend's or the tomography's constructor)")
        for key, (_t, default, hlp) in keys.items():
            shown = f"{key} (required)" if default is REQUIRED else f"{key}={_show(default)}"
            lines.append(f"    {shown:<30} {hlp}")
    return "\n".join(lines)
