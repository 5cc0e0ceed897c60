"""Which runs the typical-vs-atypical study (Sec. 7: fig08, fig09, fig19) trains.  Only the
workflow's .smk files call this module."""

from __future__ import annotations

def atypical_runs(config: dict, seeds: list[int] | None = None) -> list[dict]:
    """Noise-free runs of the primary model whose groups are typical/atypical (C-score)."""
    model = config["primary"]["model"]
    return [
        {"dataset": d, "model": model, "noise": 0.0, "seed": s, "variant": "atypical"}
        for d in config["atypical"]["datasets"] for s in (seeds or config["seeds"])
    ]


ATYPICAL_LAYER_FIGURES = ("fig09", "fig19")
