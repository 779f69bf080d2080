"""What a backend's chat template adds to the prompt estimate, learned from the backend's own usage reports.

The estimate (``usage.estimate``) counts the text of a prompt exactly but assumes OpenAI's template: 3 tokens a
message and 3 for the reply. Other engines' templates cost more, by an amount that depends on the model, the number
of messages and whether tools are defined: Llama 3.1's adds a ~25-token system preamble, 5 tokens a message and,
with tools, ~150 tokens of tool-calling instructions (bench/RESULTS.md, the llama.cpp section). Without a
correction the estimate of a short prompt on such an engine is off by half or more.

An engine that omits usage sometimes (llama.cpp in streams) reports it at other times (its unary answers), so the
gateway learns the difference there: for a sample of the requests whose upstream reports prompt tokens it also
estimates the prompt, and fits ``reported - estimated = a + b * messages`` by least squares over the last
``WINDOW`` samples, per model and per "tools defined or not". An estimate for that model then adds ``a + b *
messages`` (clamped to sane bounds). Until the first sample, the estimate is uncorrected.

Cost: estimating a sampled prompt is one tokenization of it, off the answer's path (after the answer is sent for a
stream, before it for a unary answer); requests are sampled ``EAGER`` times per model, then one in ``EVERY``.
Memory: ``WINDOW`` pairs of ints per model and tools flag, for at most ``MODELS`` models per backend.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["EAGER", "EVERY", "MODELS", "WINDOW", "PromptCalibration", "PromptShape"]

WINDOW = 64
EAGER = 16
EVERY = 32
MODELS = 64
_A_BOUNDS = (-256.0, 4096.0)
_B_BOUNDS = (-8.0, 64.0)


@dataclass(frozen=True, slots=True)
class PromptShape:
    """What a template's cost depends on: how many messages, and whether tools are defined."""

    messages: int
    tools: bool


class _Fit:
    __slots__ = ("a", "b", "samples", "seen")

    def __init__(self) -> None:
        self.samples: deque[tuple[int, int]] = deque(maxlen=WINDOW)
        self.seen = 0
        self.a = 0.0
        self.b = 0.0

    def add(self, messages: int, residual: int) -> None:
        self.samples.append((messages, residual))
        n = len(self.samples)
        mean_m = sum(m for m, _ in self.samples) / n
        mean_r = sum(r for _, r in self.samples) / n
        spread = sum((m - mean_m) ** 2 for m, _ in self.samples)
        b = sum((m - mean_m) * (r - mean_r) for m, r in self.samples) / spread if spread else 0.0
        self.b = min(max(b, _B_BOUNDS[0]), _B_BOUNDS[1])
        self.a = min(max(mean_r - self.b * mean_m, _A_BOUNDS[0]), _A_BOUNDS[1])

    def correction(self, messages: int) -> int:
        return round(self.a + self.b * messages)


class PromptCalibration:
    """One backend's learned template cost, per model (see the module docstring). Not thread-safe: the event loop's."""

    __slots__ = ("_fits", "_requests")

    def __init__(self) -> None:
        self._fits: dict[tuple[str, bool], _Fit] = {}
        self._requests: dict[str, int] = {}

    def wants_sample(self, model: str) -> bool:
        """Whether this request (whose upstream will report usage) should also have its prompt estimated."""
        count = self._requests.get(model)
        if count is None:
            if len(self._requests) >= MODELS:
                return False
            count = 0
        self._requests[model] = count + 1
        return count < EAGER or count % EVERY == 0

    def add(self, model: str, shape: PromptShape, estimated: int, reported: int) -> None:
        """One sample: the gateway's uncorrected estimate of a prompt and the prompt tokens the backend reported."""
        if reported <= 0 or estimated <= 0:
            return
        key = (model, shape.tools)
        fit = self._fits.get(key)
        if fit is None:
            if len(self._fits) >= 2 * MODELS:
                return
            fit = self._fits[key] = _Fit()
        fit.add(shape.messages, reported - estimated)

    def correction(self, model: str, shape: PromptShape) -> int:
        """Tokens to add to the estimate of a prompt of this shape for this model (0 until there is a sample)."""
        fit = self._fits.get((model, shape.tools)) or self._fits.get((model, not shape.tools))
        return fit.correction(shape.messages) if fit is not None else 0
