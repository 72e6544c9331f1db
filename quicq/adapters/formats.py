"""The two adapter formats quicq reads, told apart by their ``adapter_config.json``.

**The choice.** quicq writes its *native* format (:mod:`quicq.adapters.io`: a versioned config
with ``"format": "quicq-adapter"``, the SHA-256 of the tensor file, the geometry of every adapted
module) from :meth:`QuicqModel.save_pretrained <quicq.adapters.model.QuicqModel.save_pretrained>`,
and peft writes *peft's* format (``"peft_type": "QUIC"`` or ``"QUANTUM_PEFT"``, tensors named
``base_model.model.<module>.<parameter>``) from a ``PeftModel`` built with
:mod:`quicq.adapters.peft_interop`. Both keep peft's file names (``adapter_config.json`` +
``adapter_model.safetensors``), which Hugging Face tooling (``Trainer`` checkpoints, the Hub)
looks for. quicq does not write peft's format itself because peft's format cannot carry what the
native one guarantees: peft parses the config before any quicq code can check it (a checksum, a
format version, NaN rejection, the geometry check before allocation would all be skipped), and
reading it needs peft installed. So the two stay distinct and every quicq loader reads both:

* native: has ``"format": "quicq-adapter"`` (and no ``peft_type``);
* peft's: has ``peft_type`` (and no ``format``). quicq reads ``QUIC`` / ``QUANTUM_PEFT`` ones through
  :mod:`quicq.adapters.peft_interop` (importing peft only then) into the same checked
  :class:`~quicq.adapters.io.LoadedAdapter` the native reader gives, so ``QuicqModel.from_pretrained``,
  ``load_adapter``, :func:`~quicq.adapters.units.adapter_units` and the CLI's ``--adapter`` accept
  either directory. peft's format has no checksum; tensor names, shapes, dtypes and finiteness are
  still checked against the model before anything changes.

**Loading a peft-format QuIC directory with peft itself** needs ``import quicq.adapters.peft_interop``
first, or peft raises a bare ``KeyError: 'QUIC'`` (it looks the type up before any quicq code runs).
The saved config's ``quicq_note`` field says so, :func:`describe_adapter` names the import for any
directory, and :func:`load_with_peft` does both steps. Given a *native* directory, peft fails with
``KeyError: 'peft_type'`` (the key it dispatches on is absent); such a directory is for quicq.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from quicq.adapters.io import CONFIG_NAME, FORMAT, WEIGHTS_NAME, AdapterLoadError, LoadedAdapter, read_config_json

__all__ = ["NATIVE", "PEFT", "PEFT_IMPORT", "QUICQ_PEFT_TYPES", "adapter_format", "describe_adapter",
           "load_with_peft", "read_peft_adapter"]

NATIVE = "quicq"
PEFT = "peft"
#: The import that registers quicq's methods with peft.
PEFT_IMPORT = "import quicq.adapters.peft_interop"
#: peft_type of each quicq method in peft's format.
QUICQ_PEFT_TYPES = {"QUIC": "quic", "QUANTUM_PEFT": "quantum_peft"}
_PREFIX = "base_model.model."
_ADAPTER_TENSORS = {"quic": ("quic_params",), "quantum_peft": ("qpeft_theta_u", "qpeft_theta_v", "qpeft_lambda")}


def _format_of(meta: dict[str, Any], cfg_path: Path) -> str:
    if meta.get("format") == FORMAT:
        return NATIVE
    if "peft_type" in meta:
        return PEFT
    raise AdapterLoadError(
        f"{cfg_path} is neither a quicq adapter config (\"format\": \"{FORMAT}\") nor a peft one (\"peft_type\")"
    )


def adapter_format(directory: str | Path) -> str:
    """``"quicq"`` (native) or ``"peft"`` for an adapter directory; reads the JSON config only."""
    cfg_path = Path(directory) / CONFIG_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}")
    return _format_of(read_config_json(cfg_path), cfg_path)


def describe_adapter(directory: str | Path) -> str:
    """One line saying what the directory holds and how to load it (peft: the import to add)."""
    meta = read_config_json(Path(directory) / CONFIG_NAME)
    if _format_of(meta, Path(directory) / CONFIG_NAME) == NATIVE:
        return (f"quicq-native {meta.get('method')!r} adapter (format {meta.get('format_version')}): load it with "
                "quicq.adapters.QuicqModel.from_pretrained(model, dir) or the quicq CLI; peft cannot read it")
    ptype = meta.get("peft_type")
    if ptype in QUICQ_PEFT_TYPES:
        return (f"peft-format {ptype} adapter written through quicq.adapters.peft_interop: load it with "
                f"quicq.adapters.QuicqModel.from_pretrained(model, dir), the quicq CLI, or peft after `{PEFT_IMPORT}` "
                "(quicq.adapters.formats.load_with_peft does both)")
    return f"peft {ptype!r} adapter, not a quicq method: load it with peft"


def load_with_peft(model: torch.nn.Module, directory: str | Path, **kwargs: Any) -> Any:
    """``peft.PeftModel.from_pretrained(model, directory, **kwargs)`` with quicq's methods registered."""
    from quicq._optional import require

    peft = require("peft", "hf")
    import quicq.adapters.peft_interop  # noqa: F401  (registers QUIC / QUANTUM_PEFT)

    return peft.PeftModel.from_pretrained(model, str(directory), **kwargs)


def _module_of(key: str, patterns: list[str]) -> tuple[str, str] | None:
    """Split a modules_to_save tensor name into (module, parameter) by peft's suffix rule."""
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:i])
        if any(name == p or name.endswith("." + p) for p in patterns):
            return name, ".".join(parts[i:])
    return None


def read_peft_adapter(directory: str | Path, meta: dict[str, Any] | None = None) -> LoadedAdapter:
    """Read a peft-format QUIC / QUANTUM_PEFT directory into a checked :class:`LoadedAdapter`.

    The config goes through peft_interop's config classes (so old files get their old meaning,
    e.g. ``start="identity"``) and is converted to quicq's config; tensor names lose peft's
    ``base_model.model.`` prefix. Raises :class:`AdapterLoadError` naming what is wrong.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    meta = read_config_json(cfg_path) if meta is None else meta
    ptype = meta.get("peft_type")
    if ptype not in QUICQ_PEFT_TYPES:
        hint = " (an OFT adapter imports as QuIC with quicq.adapters.peft_oft.load_oft_adapter)" if (
            ptype == "OFT") else ""
        raise AdapterLoadError(
            f"{cfg_path} looks like a peft adapter with peft_type={ptype!r}; quicq reads its own methods "
            f"({sorted(QUICQ_PEFT_TYPES)}): load this one with peft{hint}"
        )
    from quicq.adapters import peft_interop
    from quicq.adapters.config import AdapterConfigError

    method = QUICQ_PEFT_TYPES[ptype]
    cls = peft_interop.QuICPeftConfig if method == "quic" else peft_interop.QuantumPEFTPeftConfig
    unknown = sorted(set(meta) - set(cls.__dataclass_fields__))
    if unknown:  # peft's own rule: fields of a newer version are ignored, with a warning
        warnings.warn(f"{cfg_path}: ignoring fields this quicq/peft does not know: {unknown[:5]}", stacklevel=3)
    try:
        peft_cfg = cls(**{k: v for k, v in meta.items() if k not in unknown})
        config = peft_cfg.to_quicq()
    except (AdapterConfigError, TypeError, ValueError) as exc:
        raise AdapterLoadError(f"{cfg_path}: {exc}") from None
    try:
        raw = load_file(str(w_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise AdapterLoadError(f"{w_path} is not a readable safetensors file (corrupt or truncated?): {exc}") from None
    tensors: dict[str, torch.Tensor] = {}
    adapted: set[str] = set()
    saved: set[str] = set()
    patterns = list(config.modules_to_save or [])
    for key, t in raw.items():
        if not key.startswith(_PREFIX):
            raise AdapterLoadError(f"{w_path}: tensor {key!r} lacks peft's {_PREFIX!r} prefix")
        name = key[len(_PREFIX):]
        module, _, attr = name.rpartition(".")
        if attr in _ADAPTER_TENSORS[method] and module:
            adapted.add(module)
        else:
            split = _module_of(name, patterns)
            if split is None:
                raise AdapterLoadError(f"{w_path}: tensor {key!r} is neither an adapter tensor nor in modules_to_save")
            saved.add(split[0])
        tensors[name] = t
    records = dict(peft_cfg.quicq_modules or {})
    if records and set(records) != adapted:
        raise AdapterLoadError(
            f"{cfg_path}: quicq_modules lists {sorted(records)[:5]} but the tensors adapt {sorted(adapted)[:5]}"
        )
    native_meta = {
        "format": PEFT, "peft_type": ptype, "method": method, "config": config.to_dict(),
        # no records (older quicq): names only, so the model's own sizes are used and checked by shape
        "modules": records or {m: {} for m in sorted(adapted)},
        "modules_to_save": sorted(saved),
    }
    return LoadedAdapter(directory, native_meta, config, tensors)
