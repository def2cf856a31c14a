"""Pass/fail bounds for logit parity, as data.

The f32 bounds are those of shared/docs/parity-and-fixtures.md §3: about 5x what a correct
conversion measures on the tiny fixture and 25-100x below the weakest converter bug. The
16-bit and q8_0 bounds are about 3x what this project measured for those types on tiny-text
(llama.cpp CPU, F16 KV cache): they bound rounding, not the conversion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gemma3n_gguf.validate.metrics.parity import ParityStats


@dataclass(frozen=True)
class ParityBounds:
    max_rel: float  # max |Δlogit| / reference logit std
    mean_rel: float  # mean over positions of max |Δlogit| / std
    mean_kld: float
    confident_top1: float  # top-1 agreement where the reference's top-2 gap > 0.1

    def violations(self, s: ParityStats) -> list[str]:
        found = []
        if not s.max_abs_dlogit_rel <= self.max_rel:
            found.append(f"max |dlogit| {s.max_abs_dlogit_rel:.4f} x std > {self.max_rel}")
        if not s.mean_max_abs_dlogit_rel <= self.mean_rel:
            found.append(f"mean |dlogit| {s.mean_max_abs_dlogit_rel:.4f} x std > {self.mean_rel}")
        if not s.mean_kld <= self.mean_kld:
            found.append(f"mean KLD {s.mean_kld:.2e} > {self.mean_kld:.0e}")
        if not s.confident_top1_agreement >= self.confident_top1:
            found.append(f"top-1 {s.confident_top1_agreement:.4f} < {self.confident_top1}")
        return found

    def to_dict(self) -> dict:
        return asdict(self)


# what each type measures on tiny-text: bench/parity_tiny.py -> bench/results/parity_tiny.json (README)
PARITY_BOUNDS: dict[str, ParityBounds] = {
    "f32": ParityBounds(max_rel=0.05, mean_rel=0.01, mean_kld=1e-4, confident_top1=0.99),
    "f16": ParityBounds(max_rel=0.07, mean_rel=0.025, mean_kld=1e-4, confident_top1=0.99),
    "bf16": ParityBounds(max_rel=0.45, mean_rel=0.15, mean_kld=4e-3, confident_top1=0.97),
    "q8_0": ParityBounds(max_rel=1.5, mean_rel=0.5, mean_kld=0.045, confident_top1=0.9),
}
