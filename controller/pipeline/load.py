"""PIPELINE.yaml -> the pipeline part of a run spec, with the local files its
stages name (models, keys files, user code) still to push.

A file holds one pipeline (``name``, ``streams``, ``stages``) or several under
``pipelines:``, which run concurrently. Each stage is a one-key mapping
``- resize: {size: [320, 320]}`` (or ``- {stage: resize, size: [...]}``).
``model`` takes ``path`` (relative to the YAML file; ``ppocr:detector``,
``ppocr:recognizer`` and ``ppocr:classifier`` name the PP-OCR models in the
rapidocr-onnxruntime wheel), ``ctc`` an optional ``characters`` keys file,
``code`` a ``path`` to a .py file and its ``function``. The whole file is checked
here, with the agent's own checker, before anything is pushed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import BadInput
from agent.pipeline import spec as pspec

_PLACEHOLDER = "0" * 64
# stage kind -> (YAML key of a local file, wire key of its sha256, wire key of its name)
FILES = {
    "model": ("path", "model_sha256", "model_name"),
    "ctc": ("characters", "characters_sha256", None),
    "code": ("path", "code_sha256", "code_name"),
}
PPOCR = {"detector": "DETECTOR", "recognizer": "RECOGNIZER", "classifier": "CLASSIFIER"}


@dataclass
class Loaded:
    """The checked pipeline part, and the files to push: (pipeline, stage index, wire key, path)."""

    pipeline: dict[str, Any]
    files: list[tuple[int, int, str, Path]] = field(default_factory=list)

    def with_shas(self, shas: dict[Path, str]) -> dict[str, Any]:
        out = {
            "pipelines": [dict(p, stages=[dict(s) for s in p["stages"]]) for p in self.pipeline["pipelines"]]
        }
        out["keep_outputs"] = self.pipeline["keep_outputs"]
        for i, j, key, path in self.files:
            out["pipelines"][i]["stages"][j][key] = shas[path]
        return pspec.check(out)


def resolve_path(text: str, base: Path, where: str) -> Path:
    if text.startswith("ppocr:"):
        from controller.models import ppocr

        which = PPOCR.get(text[6:])
        if which is None:
            raise BadInput(
                f"{where}: unknown {text!r}; expected one of " + ", ".join(f"ppocr:{k}" for k in PPOCR)
            )
        return ppocr.model_path(getattr(ppocr, which))
    p = Path(text)
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise BadInput(f"{where}: file not found: {text}")
    return p


def load(path: str | Path, keep_outputs: int = 16) -> Loaded:
    """Read and check PIPELINE.yaml; BadInput names the file and the stage."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"pipeline file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid YAML: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{path}: expected a mapping with stages: (or pipelines:)")
    raw = doc.get("pipelines") if "pipelines" in doc else [doc]
    if not isinstance(raw, list):
        raise BadInput(f"{path}: pipelines: must be a list")
    loaded = Loaded({})
    pipelines = []
    for i, p in enumerate(raw):
        if not isinstance(p, dict):
            raise BadInput(f"{path}: pipeline {i + 1} must be a mapping")
        stages = p.get("stages")
        if not isinstance(stages, list):
            raise BadInput(f"{path}: pipeline {p.get('name') or i + 1} needs stages: (a list)")
        wire = [_stage(st, i, j, path, loaded, p.get("name") or f"{i + 1}") for j, st in enumerate(stages)]
        pipelines.append({k: v for k, v in p.items() if k != "stages"} | {"stages": wire})
    try:
        loaded.pipeline = pspec.check({"pipelines": pipelines, "keep_outputs": keep_outputs})
    except BadInput as exc:
        raise BadInput(f"{path}: {exc}") from None
    return loaded


def _stage(st: Any, i: int, j: int, path: Path, loaded: Loaded, pname: str) -> dict[str, Any]:
    where = f"{path}: pipeline {pname} stage {j + 1}"
    if isinstance(st, dict) and "stage" not in st and len(st) == 1:
        ((kind, opts),) = st.items()
        opts = {} if opts is None else opts
        if not isinstance(opts, dict):
            raise BadInput(f"{where} ({kind}): options must be a mapping")
        st = {"stage": kind, **opts}
    if not isinstance(st, dict):
        raise BadInput(f"{where}: expected a mapping such as '- resize: {{size: [320, 320]}}'")
    st = dict(st)
    kind = st.get("stage")
    if kind in FILES:
        key, sha_key, name_key = FILES[kind]
        text = st.pop(key, None)
        if text is None and kind != "ctc":
            raise BadInput(f"{where} ({kind}): needs {key}: a file")
        if text is not None:
            if not isinstance(text, str):
                raise BadInput(f"{where} ({kind}): {key} must be a file name")
            fp = resolve_path(text, path.parent, f"{where} ({kind})")
            loaded.files.append((i, j, sha_key, fp))
            st[sha_key] = _PLACEHOLDER
            if name_key:
                st.setdefault(name_key, fp.name)
    return st
