"""What a backend's chat template adds to the prompt estimate, learned from the backend's own usage reports.

The estimate (``usage.estimate``) counts the text of a prompt exactly but assumes OpenAI's template: 3 tokens a
message and 3 for the reply, tool definitions and the response schema counted as compact JSON. Other engines'
templates differ, by amounts that depend on the model: Llama 3.1's (llama.cpp, vLLM) adds a ~25-token system
preamble and 5 tokens a message, renders tool definitions as indented JSON after ~150 tokens of instructions, and
puts no response schema in the prompt at all (llama.cpp constrains the output with a grammar instead). Without a
correction the estimate of a short prompt on such an engine is off by half or more (bench/RESULTS.md).

An engine that omits usage sometimes (llama.cpp in streams) reports it at other times (its unary answers), so the
gateway learns the difference there: for a sample of the requests whose upstream reports prompt tokens it also
estimates the prompt, and fits, per model, by ridge regression over the last ``WINDOW`` samples::

    reported - estimated = a + b * messages + t * [tools defined] + c * tool tokens + f * schema tokens

An estimate for that model then adds the fitted correction (clamped to ``BOUNDS``). A term the samples never
exercised stays 0 (the ridge pulls it there): until the backend has reported a prompt with tools, a prompt with
tools is corrected as one without; until the first sample, nothing is corrected.

Cost: estimating a sampled prompt is one tokenization of it, after the answer has gone out; requests are sampled
``EAGER`` times per model, then one in ``EVERY``. Each sample refits: the 5x5 normal equations of the window,
solved (some tens of microseconds). Memory: ``WINDOW`` samples per model, for at most ``MODELS`` models per backend.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["BOUNDS", "EAGER", "EVERY", "MODELS", "WINDOW", "PromptCalibration", "PromptShape"]

WINDOW = 64
EAGER = 16
EVERY = 32
MODELS = 64
BOUNDS = (-4096, 4096)
"""The correction of one prompt, in tokens, at most."""
_RIDGE = (0.0, 1e-6, 1e-6, 1.0, 1.0)
"""Added to the diagonal, per term: it decides only what the samples leave undetermined (a term never exercised
stays 0). The per-token terms weigh more, so that one prompt with tools is read as the fixed cost of having tools
rather than as a cost per token of their definitions, until prompts with other definitions tell the two apart."""
_TERMS = 5


@dataclass(frozen=True, slots=True)
class PromptShape:
    """What a template's cost depends on, beyond the text: messages, tool definitions, the response schema."""

    messages: int
    tools: bool = False
    tool_tokens: int = 0
    """Tokens of the tool definitions, as the estimate counts them (names, descriptions, compact JSON schemas)."""
    format_tokens: int = 0
    """Tokens of the ``response_format``, as the estimate counts it."""

    def terms(self) -> tuple[float, ...]:
        return (
            1.0,
            float(self.messages),
            1.0 if self.tools else 0.0,
            float(self.tool_tokens),
            float(self.format_tokens),
        )


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float] | None:
    """``matrix @ x = vector`` by Gaussian elimination with partial pivoting; None when singular."""
    n = len(vector)
    rows = [[*matrix[i], vector[i]] for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        if abs(rows[pivot][col]) < 1e-12:
            return None
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(col + 1, n):
            factor = rows[r][col] / rows[col][col]
            if factor:
                for c in range(col, n + 1):
                    rows[r][c] -= factor * rows[col][c]
    solution = [0.0] * n
    for r in range(n - 1, -1, -1):
        solution[r] = (rows[r][n] - sum(rows[r][c] * solution[c] for c in range(r + 1, n))) / rows[r][r]
    return solution


class _Fit:
    """The last ``WINDOW`` samples of one model, and the solution of their (ridge) normal equations."""

    __slots__ = ("samples", "weights")

    def __init__(self) -> None:
        self.samples: deque[tuple[tuple[float, ...], float]] = deque(maxlen=WINDOW)
        self.weights = [0.0] * _TERMS

    def add(self, x: tuple[float, ...], y: float) -> None:
        self.samples.append((x, y))
        xtx = [[_RIDGE[i] if i == j else 0.0 for j in range(_TERMS)] for i in range(_TERMS)]
        xty = [0.0] * _TERMS
        for terms, residual in self.samples:
            for i in range(_TERMS):
                xty[i] += terms[i] * residual
                row = xtx[i]
                for j in range(_TERMS):
                    row[j] += terms[i] * terms[j]
        weights = _solve(xtx, xty)
        if weights is not None:
            self.weights = weights

    def correction(self, x: tuple[float, ...]) -> int:
        value = round(sum(w * v for w, v in zip(self.weights, x, strict=True)))
        return min(max(value, BOUNDS[0]), BOUNDS[1])


class PromptCalibration:
    """One backend's learned template cost, per model (see the module docstring). Not thread-safe: the event loop's."""

    __slots__ = ("_fits", "_requests")

    def __init__(self) -> None:
        self._fits: dict[str, _Fit] = {}
        self._requests: dict[str, int] = {}

    def wants_sample(self, model: str) -> bool:
        """Whether this request (whose upstream reports usage) should also have its prompt estimated."""
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
        fit = self._fits.get(model)
        if fit is None:
            if len(self._fits) >= MODELS:
                return
            fit = self._fits[model] = _Fit()
        fit.add(shape.terms(), float(reported - estimated))

    def correction(self, model: str, shape: PromptShape) -> int:
        """Tokens to add to the estimate of a prompt of this shape for this model (0 until there is a sample)."""
        fit = self._fits.get(model)
        return fit.correction(shape.terms()) if fit is not None else 0
