"""Saving and loading adapters: a versioned JSON config plus a safetensors file, never pickle.

Directory layout (peft's): ``adapter_config.json`` and ``adapter_model.safetensors``.

``adapter_config.json``::

    {"format": "quicq-adapter", "format_version": 1, "quicq_version": "0.1.0",
     "method": "quic" | "quantum_peft", "config": {...every config field...},
     "modules": {"<module name>": {"kind": "linear", "out_features": 64, "in_features": 32},
                 "<conv name>": {"kind": "conv2d", ..., "kernel_size": [3, 3]}, ...},
     "modules_to_save": ["classifier", ...]}

Tensor names are ``<module name>.<parameter container>`` (``quic_params``; ``qpeft_theta_u``,
``qpeft_theta_v``, ``qpeft_lambda``) and ``<saved module name>.<parameter name>`` for
``modules_to_save``; the adapter name is not part of them, so an adapter can be loaded under
any name. Loading checks, in this order and before anything is changed: the JSON, the format
version, the method and every config field; the safetensors file (corrupt or truncated files
fail here); the recorded module sizes against the model; then every tensor name, shape, dtype
and finiteness against the plan the config makes for this model.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import quicq
from quicq.adapters.config import AdapterConfig, AdapterConfigError, config_from_dict
from quicq.adapters.geometry import layer_geometry
from quicq.errors import QuicqError
from quicq.adapters.targeting import plan_adapter
from quicq.adapters.tuner import ModulesToSaveWrapper

__all__ = [
    "CONFIG_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "AdapterLoadError",
    "LoadedAdapter",
    "module_record",
    "read_adapter",
    "read_config_json",
    "save_adapter",
]

FORMAT = "quicq-adapter"
FORMAT_VERSION = 2
#: What changed per version: 2 — QuIC circuit charts start at a sorting-network point
#: (``config.start``; version-1 files are read with ``start="identity"``, their old meaning) and
#: the config records the SHA-256 of the tensor file (``weights_sha256``), verified on load.
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


class AdapterLoadError(QuicqError, ValueError):
    """A saved adapter is unreadable or does not fit the model; nothing was changed."""


def _umask() -> int:
    """The process umask (Linux: read from /proc, so the mask is never changed, even briefly)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: swap and restore
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write: Any) -> None:
    """Write via a temporary file in the same directory and rename: no half-written files.

    ``mkstemp`` creates the file 0600; it gets ``0666 & ~umask`` (0644 under the usual umask),
    the mode a plain ``open(path, "w")`` would give, before it is renamed into place.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_adapter(qmodel: Any, directory: str | Path, adapter_name: str) -> None:
    """Write one adapter of a :class:`~quicq.adapters.model.QuicqModel` to ``directory``."""
    from safetensors.torch import save_file

    config: AdapterConfig = qmodel.peft_config[adapter_name]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    modules: dict[str, dict[str, Any]] = {}
    for name, layer in qmodel.quicq_layers(adapter_name).items():
        modules[name] = module_record(layer.get_base_layer(), name)
        for attr in layer.adapter_layer_names:
            tensors[f"{name}.{attr}"] = getattr(layer, attr)[adapter_name].detach().cpu().contiguous().clone()
    saved: list[str] = []
    for name, wrapper in qmodel._saved_wrappers().items():
        if adapter_name not in wrapper.modules_to_save:
            continue
        saved.append(name)
        for pname, p in wrapper.modules_to_save[adapter_name].named_parameters():
            tensors[f"{name}.{pname}"] = p.detach().cpu().contiguous().clone()
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "quicq_version": quicq.__version__,
        "method": config.method,
        "config": config.to_dict(),
        "modules": modules,
        "modules_to_save": saved,
    }
    st_meta = {"format": "pt", "quicq_format_version": str(FORMAT_VERSION)}
    _atomic_write(directory / WEIGHTS_NAME, lambda p: save_file(tensors, p, metadata=st_meta))
    meta["weights_sha256"] = _sha256(directory / WEIGHTS_NAME)
    _atomic_write(directory / CONFIG_NAME,
                  lambda p: Path(p).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n"))


@dataclass
class LoadedAdapter:
    """A checked adapter read from disk, not yet applied to any model."""

    directory: Path
    meta: dict[str, Any]
    config: AdapterConfig
    tensors: dict[str, torch.Tensor]

    def validate_plan(self, model: torch.nn.Module, adapter_name: str) -> Any:
        """Plan the adapter on ``model`` and check every tensor against it; returns the plan."""
        where = f"adapter at {self.directory}"
        recorded = self.meta.get("modules", {})
        self._check_records(model, recorded, where)
        try:
            plan = plan_adapter(model, self.config, adapter_name)
        except AdapterConfigError as exc:
            raise AdapterLoadError(f"{where} does not fit this model: {exc}") from None
        planned = {t.name: t for t in plan.targets}
        if set(recorded) != set(planned):
            missing = sorted(set(recorded) - set(planned))[:5]
            extra = sorted(set(planned) - set(recorded))[:5]
            raise AdapterLoadError(
                f"{where} was saved for other modules: adapted then but not matched now: {missing}; "
                f"matched now but not saved: {extra}"
            )
        if sorted(self.meta.get("modules_to_save", [])) != sorted(n for n, _ in plan.saved):
            raise AdapterLoadError(
                f"{where}: modules_to_save {self.meta.get('modules_to_save')} do not match the model's "
                f"{[n for n, _ in plan.saved]}"
            )
        expected = plan.tensor_shapes()
        missing = sorted(set(expected) - set(self.tensors))
        unexpected = sorted(set(self.tensors) - set(expected))
        if missing or unexpected:
            def more(xs: list[str]) -> str:
                return " …" if len(xs) > 5 else ""

            raise AdapterLoadError(
                f"{where}: tensor names do not match the adapter's plan; missing {missing[:5]}{more(missing)}, "
                f"unexpected {unexpected[:5]}{more(unexpected)}"
            )
        for key, shape in expected.items():
            t = self.tensors[key]
            if tuple(t.shape) != shape:
                raise AdapterLoadError(f"{where}: tensor {key!r} has shape {tuple(t.shape)}, the model needs {shape}")
            if not t.is_floating_point():
                raise AdapterLoadError(f"{where}: tensor {key!r} has dtype {t.dtype}; adapters are float tensors")
            if not bool(torch.isfinite(t).all()):
                raise AdapterLoadError(f"{where}: tensor {key!r} holds NaN or inf values")
        return plan

    @staticmethod
    def _check_records(model: torch.nn.Module, recorded: Any, where: str) -> None:
        """Every recorded module that the model has must have the recorded kind, sizes and kernel.

        Runs before planning, so a mismatch is reported as such (not as a tensor shape) and
        nothing is allocated. Fields a file does not record (older files: ``kernel_size``) are not
        compared; a peft-format file from an older quicq records names only. Modules the model
        lacks are reported by the name check after planning.
        """
        for name, rec in recorded.items():
            if not isinstance(rec, dict):
                raise AdapterLoadError(f"{where}: bad module record {name!r}: {rec!r}")
            try:
                base = model.get_submodule(name)
            except AttributeError:
                continue
            base = base.get_base_layer() if hasattr(base, "get_base_layer") else base
            try:
                now = module_record(base, name)
            except AdapterConfigError as exc:
                raise AdapterLoadError(f"{where} does not fit this model: {exc}") from None
            keys = [k for k in ("kind", "out_features", "in_features", "kernel_size") if k in rec]
            if any(rec[k] != now.get(k) for k in keys):
                raise AdapterLoadError(
                    f"{where}: module {name!r} was {_describe(rec)} when saved, this model's is {_describe(now)}"
                )

    def copy_into(self, qmodel: Any, adapter_name: str) -> None:
        """Copy the (validated) tensors into the adapter ``adapter_name`` of ``qmodel``."""
        with torch.no_grad():
            for name, layer in qmodel.quicq_layers(adapter_name).items():
                for attr in layer.adapter_layer_names:
                    p = getattr(layer, attr)[adapter_name]
                    p.copy_(self.tensors[f"{name}.{attr}"].to(dtype=p.dtype, device=p.device))
            for name, wrapper in qmodel._saved_wrappers().items():
                if not isinstance(wrapper, ModulesToSaveWrapper) or adapter_name not in wrapper.modules_to_save:
                    continue
                for pname, p in wrapper.modules_to_save[adapter_name].named_parameters():
                    p.copy_(self.tensors[f"{name}.{pname}"].to(dtype=p.dtype, device=p.device))


def module_record(base: torch.nn.Module, name: str) -> dict[str, Any]:
    """What the config records of an adapted base layer: kind, sizes and (Conv2d) the kernel size.

    The kernel size matters to Quantum-PEFT (its V circuit acts on in·kh·kw inputs) and is what
    tells a 3×3 convolution from a 1×1 one of the same channel counts.
    """
    geo = layer_geometry(base, name)
    rec: dict[str, Any] = {"kind": geo.kind, "out_features": geo.out_features, "in_features": geo.in_features}
    if geo.kind == "conv2d":
        rec["kernel_size"] = [int(k) for k in base.kernel_size]
    return rec


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _describe(m: dict[str, Any]) -> str:
    kernel = f" kernel_size={tuple(m['kernel_size'])}" if isinstance(m.get("kernel_size"), list) else ""
    return f"{m.get('kind')} out_features={m.get('out_features')} in_features={m.get('in_features')}{kernel}"


def _parse_version(v: Any) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in str(v).split("+")[0].split(".")[:3])
    except ValueError:
        raise AdapterLoadError(f"quicq_version {v!r} is not a version number") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in an adapter config (non-finite number)")


_KINDS = ("linear", "conv1d", "conv2d")


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def read_config_json(cfg_path: Path) -> dict[str, Any]:
    """The JSON object in ``cfg_path``; NaN/inf, deep nesting and non-objects are load errors."""
    try:
        meta = json.loads(cfg_path.read_text(), parse_constant=_reject_constant)
    except OSError as exc:
        raise AdapterLoadError(f"cannot read {cfg_path}: {exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        msg = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise AdapterLoadError(f"{cfg_path} is not valid JSON: {msg}") from None
    if not isinstance(meta, dict):
        raise AdapterLoadError(f"{cfg_path} must hold a JSON object")
    return meta


def read_adapter(directory: str | Path) -> LoadedAdapter:
    """Read and check an adapter directory without touching any model.

    Reads quicq's native format and peft's format of quicq's methods (:mod:`quicq.adapters.formats`).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}")
    if not w_path.is_file():
        extra = " (found a pickle adapter_model.bin: quicq loads safetensors only)" if (
            directory / "adapter_model.bin").exists() else ""
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {directory}{extra}")
    meta = read_config_json(cfg_path)
    if "peft_type" in meta and meta.get("format") != FORMAT:  # peft's format: see quicq.adapters.formats
        from quicq.adapters.formats import read_peft_adapter

        return read_peft_adapter(directory, meta)
    if meta.get("format") != FORMAT:
        raise AdapterLoadError(f"{cfg_path} is not a quicq adapter config (neither \"format\": \"{FORMAT}\" "
                               "nor peft's \"peft_type\")")
    fv = meta.get("format_version")
    if not isinstance(fv, int) or fv < 1:
        raise AdapterLoadError(f"{cfg_path}: format_version must be a positive int, got {fv!r}")
    if fv > FORMAT_VERSION:
        raise AdapterLoadError(
            f"{cfg_path}: format_version {fv} was written by a newer quicq ({meta.get('quicq_version')}); "
            f"this quicq ({quicq.__version__}) reads up to {FORMAT_VERSION}"
        )
    _parse_version(meta.get("quicq_version"))
    for key, typ in (("modules", dict), ("modules_to_save", list), ("config", dict)):
        if not isinstance(meta.get(key), typ):
            raise AdapterLoadError(f"{cfg_path}: field {key!r} is missing or not a {typ.__name__}")
    for name, rec in meta["modules"].items():
        if not (isinstance(rec, dict) and rec.get("kind") in _KINDS
                and all(_positive_int(rec.get(k)) for k in ("out_features", "in_features"))):
            raise AdapterLoadError(f"{cfg_path}: bad module record {name!r}: {rec!r}")
    if fv == 1 and meta.get("method") == "quic" and "start" not in meta["config"]:
        meta["config"] = {**meta["config"], "start": "identity"}  # what version-1 angles mean
    digest = meta.get("weights_sha256")
    if digest is None:
        warnings.warn(f"{cfg_path} records no weights_sha256 (written by quicq format {fv}); the tensor "
                      "file cannot be verified", stacklevel=2)
    elif not isinstance(digest, str) or _sha256(w_path) != digest:
        raise AdapterLoadError(
            f"{w_path} does not match the SHA-256 recorded in {CONFIG_NAME}: the file is corrupt or was "
            "changed after saving"
        )
    try:
        config = config_from_dict(meta.get("method"), meta["config"])
    except AdapterConfigError as exc:
        raise AdapterLoadError(f"{cfg_path}: {exc}") from None
    except TypeError as exc:
        raise AdapterLoadError(f"{cfg_path}: bad config fields: {exc}") from None
    try:
        tensors = load_file(str(w_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise AdapterLoadError(
            f"{w_path} is not a readable safetensors file (corrupt or truncated?): {exc}"
        ) from None
    return LoadedAdapter(directory, meta, config, tensors)
