"""``PromptCalibration``: the fit of a backend's template cost, its sampling and its bounds."""

from __future__ import annotations

from interlock.gateway.usage.calibration import (
    BOUNDS,
    EAGER,
    EVERY,
    MODELS,
    WINDOW,
    PromptCalibration,
    PromptShape,
)


def _llama(shape: PromptShape) -> int:
    """A Llama-3.1-like template's cost beyond the estimate's own: a preamble, 2 more a message, tool instructions,
    indented tool JSON (a fifth more), and no response schema in the prompt."""
    tools = 150 + round(0.2 * shape.tool_tokens) if shape.tools else 0
    return 27 + 2 * shape.messages + tools - shape.format_tokens


SHAPES = [
    PromptShape(1),
    PromptShape(2),
    PromptShape(5),
    PromptShape(3, format_tokens=40),
    PromptShape(1, tools=True, tool_tokens=60),
    PromptShape(2, tools=True, tool_tokens=200),
    PromptShape(4, tools=True, tool_tokens=120),
    PromptShape(9),
    PromptShape(2, format_tokens=90),
]


def _taught(shapes: list[PromptShape]) -> PromptCalibration:
    calibration = PromptCalibration()
    for shape in shapes:
        calibration.add("m", shape, 100, 100 + _llama(shape))
    return calibration


def test_nothing_is_corrected_before_a_sample():
    assert PromptCalibration().correction("m", PromptShape(3)) == 0


def test_every_term_is_learned():
    calibration = _taught(SHAPES)
    for shape in [
        PromptShape(1),
        PromptShape(12),
        PromptShape(3, tools=True, tool_tokens=500),
        PromptShape(2, format_tokens=300),
        PromptShape(6, tools=True, tool_tokens=80, format_tokens=20),
    ]:
        assert abs(calibration.correction("m", shape) - _llama(shape)) <= 2, shape


def test_a_term_never_seen_stays_near_zero():
    calibration = _taught([s for s in SHAPES if not s.tools])
    with_tools = PromptShape(2, tools=True, tool_tokens=200)
    without = PromptShape(2)
    assert abs(calibration.correction("m", with_tools) - calibration.correction("m", without)) <= 2


def test_models_are_apart():
    calibration = PromptCalibration()
    calibration.add("llama", PromptShape(1), 10, 40)
    assert calibration.correction("llama", PromptShape(1)) == 30
    assert calibration.correction("gpt", PromptShape(1)) == 0


def test_only_the_last_window_counts():
    calibration = PromptCalibration()
    for _ in range(WINDOW):
        calibration.add("m", PromptShape(2), 100, 500)
    for _ in range(WINDOW):
        calibration.add("m", PromptShape(2), 100, 110)
    assert calibration.correction("m", PromptShape(2)) == 10


def test_a_wild_report_is_clamped_and_empty_ones_teach_nothing():
    calibration = PromptCalibration()
    calibration.add("m", PromptShape(1), 10, 10**9)
    assert calibration.correction("m", PromptShape(1)) == BOUNDS[1]
    fresh = PromptCalibration()
    fresh.add("m", PromptShape(1), 0, 50)  # no estimate: nothing to learn
    fresh.add("m", PromptShape(1), 50, 0)  # no report: nothing to learn
    assert fresh.correction("m", PromptShape(1)) == 0


def test_sampling_is_eager_then_sparse_and_bounded_in_models():
    calibration = PromptCalibration()
    wanted = [calibration.wants_sample("m") for _ in range(EAGER + 4 * EVERY)]
    assert all(wanted[:EAGER])
    assert sum(wanted[EAGER:]) == 4
    for i in range(MODELS + 10):
        calibration.wants_sample(f"model-{i}")
    assert not calibration.wants_sample("yet another"), "at most MODELS models are tracked"
